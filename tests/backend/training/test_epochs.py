"""End-to-end training on tiny configs (CPU): every template, resume, stop, guards, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from backend.errors import Cancelled, UserError
from backend.tasks.text_classification.predictor import load_predictor
from backend.tasks.text_classification.metrics import classification_metrics
from backend.tasks.text_classification.lstm import LstmClassifier
from backend.tasks.text_classification.batching import LengthGroupedSampler, check_ids
from backend.training.checkpoints import latest_checkpoint, save_checkpoint
from backend.training.epochs import EpochState
from backend.training.run import get_accelerator, resolve_precision, train
from tests.backend.training_fixtures import (Recorder, finetune_config, lstm_config, make_dataset, never, quality,
                                             rule_dataset, rule_rows, scratch_config, tiny_bert_folder)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # every template trained end to end

PROBE_TEXTS = ["a good story", "bad", "the music was good and the food bad", "", "rain rain rain"]


@pytest.fixture(scope="module")
def accelerator():
    return get_accelerator("cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return rule_dataset(tmp_path_factory.mktemp("rule"))


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dataset, base_model, accelerator):
    """One finished run per template: kind -> (result, recorder)."""
    configs = {"lstm": lstm_config(), "transformer-scratch": scratch_config(),
               "transformer": finetune_config(str(base_model))}
    finished = {}
    for kind, config in configs.items():
        recorder = Recorder()
        result = train(config, dataset, tmp_path_factory.mktemp(kind), on_progress=recorder,
                       should_stop=never, accelerator=accelerator)
        finished[kind] = (result, recorder)
    return finished


def _first_and_last(values):
    return values[0][1], values[-1][1]


@pytest.mark.parametrize("kind", ["lstm", "transformer-scratch", "transformer"])
def test_end_to_end_loss_decreases_and_files_are_saved(runs, kind):
    result, recorder = runs[kind]
    first, last = _first_and_last(recorder.series("train_loss"))
    assert last < first * 0.9
    names = {path.name for path in result.output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "run_config.json", "README.md",
            "metrics.json"} <= names
    assert "checkpoints" not in names  # a finished run keeps only its model
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)  # weights in safetensors only
    assert result.metrics["labels"] == ["negative", "positive"]
    assert result.metrics["macro_f1"] >= 0.9


@pytest.mark.parametrize("kind", ["lstm", "transformer-scratch", "transformer"])
def test_reloaded_predictor_matches_in_memory_model(runs, kind):
    result, _ = runs[kind]
    in_memory = result.predictor.predict(PROBE_TEXTS)
    reloaded = load_predictor(result.output_dir, device="cpu").predict(PROBE_TEXTS)
    for a, b in zip(in_memory, reloaded):
        assert a["label"] == b["label"]
        assert a["scores"].keys() == b["scores"].keys() == {"negative", "positive"}
        for label in a["scores"]:
            assert a["scores"][label] == pytest.approx(b["scores"][label], abs=1e-5)


@pytest.mark.parametrize("kind", ["transformer-scratch", "transformer"])
def test_transformers_pipeline_loads_the_output_with_our_labels(runs, kind):
    from transformers import pipeline

    result, _ = runs[kind]
    classifier = pipeline("text-classification", model=str(result.output_dir), device="cpu")
    ours = load_predictor(result.output_dir, device="cpu").predict(PROBE_TEXTS[:3])
    theirs = classifier(PROBE_TEXTS[:3])
    for mine, other in zip(ours, theirs):
        assert other["label"] == mine["label"]
        assert other["score"] == pytest.approx(mine["scores"][mine["label"]], abs=1e-4)


def test_lstm_learns_the_rule(runs):
    result, recorder = runs["lstm"]
    assert result.metrics["accuracy"] >= 0.95
    assert recorder.series("eval_accuracy")[-1][1] >= 0.95


def test_progress_reports_carry_the_contract_keys(runs):
    result, recorder = runs["lstm"]
    train_keys = {"train_loss", "learning_rate", "epoch", "samples_per_second", "eta_seconds", "progress",
                  "total_steps"}
    eval_keys = {"eval_loss", "eval_accuracy", "eval_macro_f1", "eval_macro_precision", "eval_macro_recall"}
    train_calls = [values for _, values in recorder.calls if "train_loss" in values]
    eval_calls = [(step, values) for step, values in recorder.calls if "eval_loss" in values]
    assert train_calls and all(train_keys <= values.keys() for values in train_calls)
    assert len(eval_calls) == 3 and all(eval_keys <= values.keys() for _, values in eval_calls)  # once per epoch
    steps = [step for step, values in recorder.calls if "train_loss" in values]
    assert steps == sorted(steps) and all(step % 5 == 0 for step in steps)  # log_every_steps=5
    assert recorder.calls[-1][1]["progress"] == pytest.approx(1.0)
    assert recorder.calls[-1][1]["total_steps"] == 75  # 400 rows / 16 per batch * 3 epochs
    learning_rates = [values["learning_rate"] for values in train_calls]
    assert max(learning_rates) > learning_rates[-1]  # warm-up, then linear decay
    saved = json.loads((result.output_dir / "run_config.json").read_text())
    assert saved == json.loads(lstm_config().model_dump_json())


def test_best_model_metrics_are_per_class_and_confusion(runs):
    metrics = runs["transformer"][0].metrics
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert sum(row["support"] for row in metrics["per_class"].values()) == 100
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    card = (runs["transformer"][0].output_dir / "README.md").read_text()
    assert "rule" in card and "macro_f1" in card and 'pipeline("text-classification"' in card


@pytest.mark.parametrize("make_config", [lstm_config, scratch_config], ids=["lstm", "scratch"])
def test_same_seed_gives_identical_metrics(tmp_path, dataset, accelerator, make_config):
    config = make_config(epochs=1, template=make_config().template.model_copy(update={"dropout": 0.2}))
    outcomes = []
    for attempt in range(2):
        recorder = Recorder()
        result = train(config, dataset, tmp_path / str(attempt), on_progress=recorder, should_stop=never,
                       accelerator=accelerator)
        outcomes.append((quality(result.metrics), recorder.series("train_loss")))
    assert outcomes[0] == outcomes[1]


def test_stop_saves_a_checkpoint_and_resume_finishes_like_an_uninterrupted_run(tmp_path, dataset, accelerator):
    config = lstm_config(epochs=2)  # 25 optimizer steps per epoch
    checks = {"count": 0}

    def stop_after_30_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 30

    with pytest.raises(Cancelled):
        train(config, dataset, tmp_path / "run", on_progress=Recorder(), should_stop=stop_after_30_steps,
              accelerator=accelerator)
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.name == "step-00000030"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 30
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["step-00000025", "step-00000030"]

    resumed = Recorder()
    result = train(config, dataset, tmp_path / "run", on_progress=resumed, should_stop=never, resume=True,
                   accelerator=accelerator)
    assert resumed.calls[0][0] > 30
    assert resumed.calls[-1][0] == 50 and resumed.calls[-1][1]["progress"] == pytest.approx(1.0)
    assert not (tmp_path / "run" / "checkpoints").exists()

    straight = train(config, dataset, tmp_path / "straight", on_progress=Recorder(), should_stop=never,
                     accelerator=accelerator)
    assert quality(result.metrics) == quality(straight.metrics)  # same RNG, same batch order: resuming changes nothing


def test_a_run_forgets_what_was_registered_before_and_after_it_without_a_full_collection(
        tmp_path, dataset, accelerator, monkeypatch):
    """Runs share the process-wide accelerator, and save_state saves every model registered on it: a
    model left by an earlier run must not reach this run's checkpoints, and this run's must not stay
    behind. On a CPU that costs no full garbage collection (0.4 s a call with torch loaded)."""
    import gc

    accelerator.prepare(torch.nn.Linear(2, 2))  # what a run that did not clean up would leave
    collections = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or real_collect(*args))
    checks = {"count": 0}

    def stop_after_3_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 3

    with pytest.raises(Cancelled):
        train(lstm_config(epochs=1), dataset, tmp_path / "run", on_progress=Recorder(),
              should_stop=stop_after_3_steps, accelerator=accelerator)
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert [p.name for p in checkpoint.glob("model*.safetensors")] == ["model.safetensors"]
    accelerator.save_state(str(tmp_path / "left"))  # whatever is still registered after the run
    assert not list((tmp_path / "left").glob("model*"))
    assert collections == []


def test_on_a_gpu_forgetting_a_run_is_accelerates_free_memory():
    """There the full collection and the emptied device cache let the next run find the memory free."""
    from backend.training.devices import forget_registered

    class GpuAccelerator:
        device = torch.device("cuda")
        freed = 0

        def free_memory(self):
            self.freed += 1

    gpu = GpuAccelerator()
    forget_registered(gpu)
    assert gpu.freed == 1


def test_latest_checkpoint_ignores_half_written_folders(tmp_path, dataset, accelerator):
    model = torch.nn.Linear(2, 2)
    accelerator.free_memory()
    accelerator.prepare(model)
    try:
        save_checkpoint(accelerator, tmp_path, EpochState(global_step=7), tokenizer=None)
        (tmp_path / "checkpoints" / ".tmp-step-00000009").mkdir()  # a crash while saving step 9
        (tmp_path / "checkpoints" / "step-00000008").mkdir()       # renamed but no state file
        assert latest_checkpoint(tmp_path).name == "step-00000007"
        for step in (10, 11, 12, 12):  # step 12 twice: epoch end, then a stop at the same step
            save_checkpoint(accelerator, tmp_path, EpochState(global_step=step), tokenizer=None)
        complete = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.startswith("."))
        assert complete == ["step-00000011", "step-00000012"]
        assert latest_checkpoint(tmp_path).name == "step-00000012"
        assert (latest_checkpoint(tmp_path) / "model.safetensors").is_file()  # weights via safetensors
    finally:
        accelerator.free_memory()


def test_time_budget_stops_cleanly_and_still_saves(tmp_path, dataset, accelerator, monkeypatch):
    monkeypatch.setenv("MODELSMITH_DEVICE", "cpu")  # no accelerator given: Settings picks the device
    recorder = Recorder()
    result = train(lstm_config(time_budget_seconds=1e-6), dataset, tmp_path, on_progress=recorder,
                   should_stop=never)
    assert result.stop_reason == "time_budget"
    assert recorder.calls[-1][0] == 1 and "eval_macro_f1" in recorder.calls[-1][1]
    assert (tmp_path / "model.safetensors").is_file() and "macro_f1" in result.metrics


def test_early_stopping_after_patience_evaluations(tmp_path, dataset, accelerator):
    config = lstm_config(learning_rate=1e-9, eval_every_steps=2, early_stopping_patience=1)
    recorder = Recorder()
    result = train(config, dataset, tmp_path, on_progress=recorder, should_stop=never, accelerator=accelerator)
    assert result.stop_reason == "early_stopping"
    assert [step for step, _ in recorder.series("eval_macro_f1")] == [2, 4]
    assert result.best_step == 2


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, dataset, accelerator):
    recorder = Recorder()
    train(lstm_config(epochs=1, gradient_accumulation_steps=2, log_every_steps=1), dataset, tmp_path,
          on_progress=recorder, should_stop=never, accelerator=accelerator)
    steps = [step for step, _ in recorder.series("train_loss")]
    assert steps == list(range(1, 14))  # 25 batches -> 13 optimizer steps (the last one short)
    assert recorder.calls[-1][1]["total_steps"] == 13


def test_unknown_label_in_data_is_a_user_error(tmp_path, accelerator):
    data = make_dataset(tmp_path / "data", rule_rows(40, 1), rule_rows(10, 2), labels=["negative"])
    with pytest.raises(UserError, match="at least 2"):
        train(lstm_config(), data, tmp_path / "a", on_progress=Recorder(), should_stop=never, accelerator=accelerator)
    data = make_dataset(tmp_path / "data2", rule_rows(40, 1) + [("x", "neutral")], rule_rows(10, 2),
                        labels=["negative", "positive"])
    with pytest.raises(UserError, match="neutral"):
        train(lstm_config(), data, tmp_path / "b", on_progress=Recorder(), should_stop=never, accelerator=accelerator)


def test_check_ids_guards_labels_and_tokens():
    check_ids([[2, 5, 3]], [1], vocab_size=6, num_labels=2)  # in range: no error
    with pytest.raises(UserError, match="label id 2"):
        check_ids([[2, 3]], [0, 2], vocab_size=10, num_labels=2)
    with pytest.raises(UserError, match="token id 10"):
        check_ids([[2, 10, 3]], [0], vocab_size=10, num_labels=2)


def test_tokenizer_bigger_than_the_embedding_is_caught_before_training(tmp_path, dataset, accelerator):
    from transformers import AutoTokenizer, BertConfig, BertModel

    base = tiny_bert_folder(tmp_path / "ok")
    broken = tmp_path / "broken"
    BertModel(BertConfig(vocab_size=20, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(str(broken))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(broken))
    with pytest.raises(UserError, match="vocabulary has 20 entries"):
        train(finetune_config(str(broken)), dataset, tmp_path / "run", on_progress=Recorder(), should_stop=never,
              accelerator=accelerator)


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")])
def test_out_of_memory_becomes_a_user_error(tmp_path, dataset, accelerator, monkeypatch, error):
    def explode(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(LstmClassifier, "forward", explode)
    with pytest.raises(UserError, match="Out of memory on cpu: lower batch_size") as caught:
        train(lstm_config(), dataset, tmp_path, on_progress=Recorder(), should_stop=never, accelerator=accelerator)
    assert "max_length" in str(caught.value)


def test_length_grouped_sampler_is_seeded_complete_and_grouped():
    lengths = [((i * 37) % 101) + 1 for i in range(1000)]
    sampler = LengthGroupedSampler(lengths, batch_size=10, seed=3)
    first = list(sampler)
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert len(first) == len(sampler) == 100 and all(len(batch) <= 10 for batch in first)
    assert list(LengthGroupedSampler(lengths, batch_size=10, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in first)
    assert padded < 1.1 * sum(lengths)  # batches hold similar lengths: little padding


def test_accelerator_is_cached_and_precision_follows_the_device(monkeypatch):
    assert get_accelerator("cpu") is get_accelerator("cpu")
    assert get_accelerator("cpu").device.type == "cpu"
    assert resolve_precision("cpu") == "no" and resolve_precision("mps") == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("cuda") == "fp16"


def test_classification_metrics_match_hand_counts():
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"], loss=0.5)
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion_matrix"] == [[1, 1], [0, 2]]
    assert metrics["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert metrics["macro_recall"] == pytest.approx(0.75) and metrics["loss"] == 0.5


def test_each_run_says_where_its_time_went(runs):
    result, _ = runs["lstm"]
    timing = result.metrics["timing_seconds"]
    assert set(timing) == {"setup", "steps", "evaluation", "checkpoints", "saving", "finishing", "total"}
    # Every phase happened in a run that evaluates, checkpoints and saves each epoch.
    assert all(timing[phase] > 0 for phase in ("setup", "steps", "evaluation", "checkpoints", "saving"))
    parts = sum(value for key, value in timing.items() if key != "total")
    assert timing["total"] == pytest.approx(parts, abs=0.01)
    assert "timing_seconds" not in json.loads((result.output_dir / "metrics.json").read_text())  # quality only


def test_torch_compile_setting_trains_the_compiled_model_and_saves_plain_weights(tmp_path, dataset, accelerator,
                                                                               monkeypatch):
    from safetensors import safe_open

    compiled_modules = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        # Dynamo traces the model for real; the "eager" backend skips inductor's C++ build, which
        # takes minutes on the CI's two cores and is torch's own code, not ours.
        compiled_modules.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    result = train(scratch_config(epochs=1, torch_compile=True), dataset, tmp_path, on_progress=Recorder(),
                   should_stop=never, accelerator=accelerator)
    assert len(compiled_modules) == 1
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        assert not any("_orig_mod" in key for key in weights.keys())  # saved without the compile wrapper
    in_memory = result.predictor.predict(PROBE_TEXTS)
    reloaded = load_predictor(tmp_path, device="cpu").predict(PROBE_TEXTS)
    assert [a["label"] for a in in_memory] == [b["label"] for b in reloaded]
    torch._dynamo.reset()
