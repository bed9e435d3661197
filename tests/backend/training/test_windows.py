"""Language-model training on tiny configs (CPU): learning, files, metrics, stop/resume, budget, guards."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from backend.config import templates_of, TrainConfig, default_config

from backend.tasks.text_generation.configs import LstmLmTemplate, TransformerLmFinetuneTemplate, TransformerLmTemplate
from backend.errors import Cancelled, UserError
from backend.tasks.text_generation.tokenization import build_char_tokenizer, characters_per_token, encode_corpus, train_bpe_tokenizer
from backend.training.windows import (EvalBlocks, bits_per_character, evaluate_lm, learning_rate_at, lm_metrics,
                                make_eval_blocks, sample_batch)
from backend.tasks.text_generation.transformer_lm import build_finetune_lm
from backend.training.checkpoints import latest_checkpoint
from backend.training.run import get_accelerator, train
from tests.backend.lm_fixtures import (PATTERN, corpus_dataset, dataset, lstm_lm_config, one_thread, trained,
                                       transformer_lm_config)
from tests.backend.training_fixtures import Recorder, never, quality

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # language models trained end to end

SCRATCH_KINDS = ["lstm-lm", "transformer-lm"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def accelerator():
    return get_accelerator("cpu")


# --- learning and artifacts -------------------------------------------------------------------

@pytest.mark.parametrize("kind", SCRATCH_KINDS)
def test_from_scratch_model_learns_the_repeating_pattern(kind):
    result, recorder = trained(kind)
    assert result.metrics["loss"] < 0.35  # a uniform guess over the pattern's characters is ~3.0
    assert result.metrics["bits_per_char"] == pytest.approx(result.metrics["loss"] / math.log(2))  # 1 char/token
    assert result.metrics["perplexity"] == pytest.approx(math.exp(result.metrics["loss"]))
    first, last = recorder.series("train_loss")[0][1], recorder.series("train_loss")[-1][1]
    assert last < first * 0.2
    assert result.best_step == result.metrics["step"] and result.stop_reason == "completed"


@pytest.mark.parametrize("kind", SCRATCH_KINDS)
def test_run_folder_holds_model_tokenizer_card_and_metrics(kind):
    result, _ = trained(kind)
    names = {path.name for path in result.output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "run_config.json",
            "README.md", "metrics.json"} <= names
    assert "checkpoints" not in names and not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    assert json.loads((result.output_dir / "metrics.json").read_text()) == quality(result.metrics)
    card = (result.output_dir / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "bits per character" in card and "load_generator" in card
    if kind == "transformer-lm":
        assert json.loads((result.output_dir / "config.json").read_text())["model_type"] == "gpt2"
        assert 'pipeline("text-generation"' in card


def test_progress_reports_carry_the_contract_keys():
    _, recorder = trained("lstm-lm")
    train_keys = {"train_loss", "learning_rate", "epoch", "samples_per_second", "eta_seconds", "progress",
                  "total_steps"}
    eval_keys = {"eval_loss", "eval_perplexity", "eval_bits_per_char", "progress", "total_steps"}
    train_calls = [(step, values) for step, values in recorder.calls if "train_loss" in values]
    eval_calls = [(step, values) for step, values in recorder.calls if "eval_loss" in values]
    assert train_calls and all(train_keys <= values.keys() for _, values in train_calls)
    assert [step for step, _ in train_calls] == list(range(5, 81, 5))           # log_every_steps=5, 80 steps
    assert [step for step, _ in eval_calls] == [20, 40, 60, 80]                 # eval_every_steps=20 + final
    assert all(eval_keys <= values.keys() for _, values in eval_calls)
    assert recorder.calls[-1][1]["progress"] == pytest.approx(1.0)
    assert train_calls[-1][1]["total_steps"] == 80
    rates = [values["learning_rate"] for _, values in train_calls]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 5    # cosine decay after warm-up


def test_fine_tuning_a_local_causal_lm_folder_learns_and_saves_hf_format():
    result, recorder = trained("transformer-lm-finetune")
    evals = [value for _, value in recorder.series("eval_loss")]
    assert evals[-1] < evals[0] * 0.5
    assert result.metrics["bits_per_char"] < 1.0
    assert (result.output_dir / "generation_config.json").is_file()
    assert not (result.output_dir / "checkpoints").exists()


@pytest.mark.parametrize("kind", ["transformer-lm", "transformer-lm-finetune"])
def test_transformers_pipeline_loads_the_output_and_agrees_with_greedy_generation(kind):
    from transformers import pipeline

    result, _ = trained(kind)
    writer = pipeline("text-generation", model=str(result.output_dir), device="cpu")
    prompt = "the cat"
    theirs = writer(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    ours = result.generator.generate(prompt, max_new_tokens=12, temperature=0)
    assert theirs == prompt + ours and len(ours) > 0


# --- stop, resume, budget ---------------------------------------------------------------------

def test_stop_saves_a_checkpoint_and_resume_continues_from_its_step(tmp_path, accelerator):
    config = lstm_lm_config(max_steps=40, eval_every_steps=10)
    checks = {"count": 0}

    def stop_after_25_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 25

    with pytest.raises(Cancelled):
        train(config, dataset(), tmp_path / "run", on_progress=Recorder(), should_stop=stop_after_25_steps,
              accelerator=accelerator)
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.name == "step-00000025"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 25
    assert (checkpoint / "tokenizer.json").is_file()

    resumed = Recorder()
    result = train(config, dataset(), tmp_path / "run", on_progress=resumed, should_stop=never, resume=True,
                   accelerator=accelerator)
    assert resumed.calls[0][0] == 30                                 # first report after step 25
    assert resumed.calls[-1][0] == 40 and resumed.calls[-1][1]["progress"] == pytest.approx(1.0)
    assert not (tmp_path / "run" / "checkpoints").exists()

    straight = train(config, dataset(), tmp_path / "straight", on_progress=Recorder(), should_stop=never,
                     accelerator=accelerator)
    assert quality(result.metrics) == quality(straight.metrics)  # same batches, same RNG: resuming changes nothing


def test_time_budget_stops_cleanly_evaluates_and_saves(tmp_path, accelerator):
    recorder = Recorder()
    result = train(lstm_lm_config(time_budget_seconds=1e-6), dataset(), tmp_path, on_progress=recorder,
                   should_stop=never, accelerator=accelerator)
    assert result.stop_reason == "time_budget" and result.best_step == 1
    assert "eval_bits_per_char" in recorder.calls[-1][1] and recorder.calls[-1][1]["progress"] == 1.0
    assert (tmp_path / "model.safetensors").is_file() and "bits_per_char" in result.metrics


def test_bpe_tokenization_trains_and_reports_bits_per_character_below_loss(tmp_path, accelerator):
    template = TransformerLmTemplate(tokenizer="bpe", vocab_size=300, block_size=16, hidden_size=32, num_layers=1,
                                     num_heads=2)
    result = train(transformer_lm_config(template=template, max_steps=30), dataset(), tmp_path,
                   on_progress=Recorder(), should_stop=never, accelerator=accelerator)
    # BPE tokens cover several characters each: per character the model is surer than per token.
    assert result.metrics["characters"] > 2 * result.metrics["tokens"]
    assert result.metrics["bits_per_char"] < result.metrics["loss"] / math.log(2)


def test_too_little_text_is_a_user_error(tmp_path, accelerator):
    tiny = corpus_dataset(tmp_path / "data", text="ab\nc", validation_share=0.25)
    with pytest.raises(UserError, match="at least two tokens"):
        train(lstm_lm_config(), tiny, tmp_path / "run", on_progress=Recorder(), should_stop=never,
              accelerator=accelerator)


def test_offline_hub_id_is_a_clear_user_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="could not be loaded: no network / not a local folder"):
        build_finetune_lm(TransformerLmFinetuneTemplate(base_model="modelsmith-test/no-such-causal-lm"))
    with pytest.raises(UserError, match="not a folder"):
        build_finetune_lm(TransformerLmFinetuneTemplate(base_model="/no/such/folder"))


# --- metrics, batches, schedule ---------------------------------------------------------------

def test_bits_per_character_on_a_hand_checked_example():
    # Four tokens, each given probability 1/4: NLL = 4 ln 4 nats = 8 bits, over 8 characters -> 1 bit/char.
    metrics = lm_metrics(4 * math.log(4), tokens=4, characters=8)
    assert metrics["loss"] == pytest.approx(math.log(4))
    assert metrics["perplexity"] == pytest.approx(4.0)
    assert metrics["bits_per_char"] == pytest.approx(1.0)
    assert bits_per_character(math.log(2) * 3, 6) == pytest.approx(0.5)


def test_characters_per_token_counts_each_character_once():
    # Offsets end at 3, 4, 4 (a byte-level token inside the same character), 6.
    assert characters_per_token(np.array([3, 4, 4, 6])).tolist() == [3, 1, 0, 2]
    text = "héllo wörld 🙂 ça va\n" * 3
    bpe = train_bpe_tokenizer(text, vocab_size=270, block_size=32)
    ids, characters = encode_corpus(bpe, text)
    assert len(ids) == len(characters) and characters.sum() == len(text) and len(ids) > len(text) / 4
    char_ids, char_counts = encode_corpus(build_char_tokenizer(text, 32), text)
    assert len(char_ids) == len(text) and (char_counts == 1).all()


def test_uniform_model_scores_log2_vocabulary_bits_per_token(accelerator):
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = None

        def forward(self, input_ids, use_cache=False):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 8)})()

    ids = torch.arange(20).remainder(8).reshape(2, 10)
    blocks = EvalBlocks(inputs=ids, targets=ids, characters=30.0)  # 20 tokens covering 30 characters
    metrics = evaluate_lm(Uniform(), blocks, batch_size=1, device=torch.device("cpu"))
    assert metrics["loss"] == pytest.approx(math.log(8))
    assert metrics["bits_per_char"] == pytest.approx(20 * 3 / 30)  # log2(8) = 3 bits per token


def test_training_batches_are_seeded_windows_and_targets_follow_inputs():
    ids = torch.arange(1000)
    inputs, targets = sample_batch(ids, block_size=16, batch_size=4, seed=1, step=3)
    assert inputs.shape == targets.shape == (4, 16)
    assert torch.equal(targets, inputs + 1)                      # the next token of every position
    again, _ = sample_batch(ids, 16, 4, seed=1, step=3)
    other, _ = sample_batch(ids, 16, 4, seed=1, step=4)
    assert torch.equal(inputs, again) and not torch.equal(inputs, other)


def test_validation_blocks_are_fixed_and_count_characters():
    ids, chars = np.arange(101), np.full(101, 2.0)
    few = make_eval_blocks(ids, chars, block_size=10, count=50)  # only 10 non-overlapping blocks fit
    assert few.inputs.shape == (10, 10) and few.inputs[:, 0].tolist() == list(range(0, 100, 10))
    assert torch.equal(few.targets, few.inputs + 1) and few.characters == 2.0 * 100
    spread = make_eval_blocks(ids, chars, block_size=10, count=3)
    assert spread.inputs[:, 0].tolist() == [0, 45, 90]


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    config = lstm_lm_config(learning_rate=1e-2, warmup_ratio=0.1)
    assert learning_rate_at(config, 0.05) == pytest.approx(5e-3)
    assert learning_rate_at(config, 0.1) == pytest.approx(1e-2)
    assert learning_rate_at(config, 1.0) == pytest.approx(1e-3)


# --- tokenizers and config --------------------------------------------------------------------

def test_char_tokenizer_round_trips_and_maps_unknown_characters(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = build_char_tokenizer(PATTERN, block_size=32)
    text = "the  cat\nsat."
    assert tokenizer.decode(tokenizer.encode(text)) == text      # spaces and newlines kept as they are
    assert tokenizer.encode("Z") == [tokenizer.unk_token_id]
    tokenizer.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again.encode(text) == tokenizer.encode(text) and again.decode(again.encode(text)) == text


def test_bpe_tokenizer_is_deterministic_and_lossless():
    first = train_bpe_tokenizer(PATTERN * 10, vocab_size=300, block_size=32)
    second = train_bpe_tokenizer(PATTERN * 10, vocab_size=300, block_size=32)
    assert first.get_vocab() == second.get_vocab()
    text = "Dogs sat, 😀 CATS run!\n"
    assert first.decode(first.encode(text)) == text and first.unk_token_id is None


def test_lm_templates_belong_to_text_generation_with_their_defaults():
    assert templates_of("text-generation") == ("lstm-lm", "transformer-lm", "transformer-lm-finetune")
    for kind in templates_of("text-generation"):
        config = default_config(1, kind)
        assert config.task == "text-generation" and config.template.kind == kind
        assert TrainConfig.model_validate_json(config.model_dump_json()) == config
    assert default_config(1, "transformer-lm-finetune").learning_rate < default_config(1, "lstm-lm").learning_rate
    with pytest.raises(ValidationError, match="does not do text-classification"):
        TrainConfig(dataset_id=1, template=LstmLmTemplate())
    with pytest.raises(ValidationError, match="does not do text-generation"):
        default_config(1, "lstm", "text-generation")
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        TransformerLmTemplate(hidden_size=30, num_heads=4)
