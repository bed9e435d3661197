"""Runs read their token ids from the dataset's cache: a second run and a resume skip tokenizing and
train exactly as the first; another length, tokenizer or dataset tokenizes again; damage is rebuilt."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.data.token_cache import cache_folder
from backend.errors import Cancelled
from backend.tasks.text_classification import cached_tokens
from backend.tasks.text_classification.configs import LstmTemplate
from backend.tasks.text_generation import batching as lm_batching
from backend.tasks.text_generation.configs import LstmLmTemplate
from backend.training.run import get_accelerator, train
from tests.backend.lm_fixtures import PATTERN, corpus_dataset, lstm_lm_config, one_thread
from tests.backend.training_fixtures import (Recorder, finetune_config, lstm_config, never, quality, rule_dataset,
                                             tiny_bert_folder)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def accelerator():
    return get_accelerator("cpu")


@pytest.fixture
def encode_calls(monkeypatch):
    """The number of texts the classifier's `encode` tokenized, per call."""
    calls: list[int] = []
    real = cached_tokens.encode

    def counting(tokenizer, texts, max_length, *args, **kwargs):
        calls.append(len(texts))
        return real(tokenizer, texts, max_length, *args, **kwargs)

    monkeypatch.setattr(cached_tokens, "encode", counting)
    return calls


@pytest.fixture
def learn_calls(monkeypatch):
    """The vocabulary kinds the classifier's `train_tokenizer` learned, per call."""
    calls: list[str] = []
    real = cached_tokens.train_tokenizer

    def counting(texts, kind, *args, **kwargs):
        calls.append(kind)
        return real(texts, kind, *args, **kwargs)

    monkeypatch.setattr(cached_tokens, "train_tokenizer", counting)
    return calls


@pytest.fixture
def corpus_calls(monkeypatch):
    """The number of characters the language model's `encode_corpus` tokenized, per call."""
    calls: list[int] = []
    real = lm_batching.encode_corpus

    def counting(tokenizer, text):
        calls.append(len(text))
        return real(tokenizer, text)

    monkeypatch.setattr(lm_batching, "encode_corpus", counting)
    return calls


def _run(config, dataset, folder, accelerator, **kwargs):
    recorder = Recorder()
    result = train(config, dataset, folder, on_progress=recorder, should_stop=kwargs.pop("should_stop", never),
                   accelerator=accelerator, **kwargs)
    return quality(result.metrics), recorder.series("train_loss")


def _small_lstm(**overrides):
    return lstm_config(epochs=1, **overrides)


# --- text classification ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_second_run_reads_the_cache_and_trains_identically(tmp_path, accelerator, encode_calls, learn_calls, kind):
    dataset = rule_dataset(tmp_path / "data", train_rows=160, validation_rows=40)
    config = _small_lstm() if kind == "lstm" else finetune_config(str(tiny_bert_folder(tmp_path / "bert")), epochs=1)
    first = _run(config, dataset, tmp_path / "first", accelerator)
    learned = ["wordpiece"] if kind == "lstm" else []                  # the fine-tuned model brings its own
    assert encode_calls == [160, 40] and learn_calls == learned         # cold: both splits tokenized
    assert len(list(cache_folder(dataset).glob("*.safetensors"))) == 2 + len(learned)
    second = _run(config, dataset, tmp_path / "second", accelerator)
    assert encode_calls == [160, 40] and learn_calls == learned         # warm: nothing learned or tokenized again
    assert second == first


def test_another_length_tokenizer_or_dataset_tokenizes_again(tmp_path, accelerator, encode_calls, learn_calls):
    dataset = rule_dataset(tmp_path / "data", train_rows=160, validation_rows=40)
    _run(_small_lstm(), dataset, tmp_path / "base", accelerator)
    assert len(encode_calls) == 2
    _run(_small_lstm(max_length=16), dataset, tmp_path / "length", accelerator)
    assert len(encode_calls) == 4
    bpe = LstmTemplate(vocab_size=120, embedding_dim=32, hidden_size=32, dropout=0.1, tokenizer="bpe")
    _run(_small_lstm(template=bpe), dataset, tmp_path / "tokenizer", accelerator)
    assert len(encode_calls) == 6
    _run(_small_lstm(), replace(dataset, content_hash="e" * 64), tmp_path / "dataset", accelerator)
    assert len(encode_calls) == 8
    _run(_small_lstm(max_length=16), dataset, tmp_path / "length-again", accelerator)
    assert len(encode_calls) == 8                                        # every earlier entry is still there
    assert learn_calls == ["wordpiece", "bpe", "wordpiece"]             # per dataset and kind, not per length


def test_a_damaged_cache_is_rebuilt_and_the_run_is_unchanged(tmp_path, accelerator, encode_calls):
    dataset = rule_dataset(tmp_path / "data", train_rows=160, validation_rows=40)
    first = _run(_small_lstm(), dataset, tmp_path / "first", accelerator)
    for entry in cache_folder(dataset).glob("*.safetensors"):
        entry.write_bytes(entry.read_bytes()[:100])                     # as if cut short by a full disk
    second = _run(_small_lstm(), dataset, tmp_path / "second", accelerator)
    assert encode_calls == [160, 40, 160, 40] and second == first
    third = _run(_small_lstm(), dataset, tmp_path / "third", accelerator)
    assert len(encode_calls) == 4 and third == first                    # the rebuilt entries are read


def test_resume_reads_the_cache_and_finishes_like_an_uninterrupted_run(tmp_path, accelerator, encode_calls):
    dataset = rule_dataset(tmp_path / "data", train_rows=160, validation_rows=40)
    config = lstm_config(epochs=2)                                       # 10 steps per epoch
    checks = {"count": 0}

    def stop_after_13_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 13

    with pytest.raises(Cancelled):
        _run(config, dataset, tmp_path / "run", accelerator, should_stop=stop_after_13_steps)
    assert len(encode_calls) == 2
    resumed, _ = _run(config, dataset, tmp_path / "run", accelerator, resume=True)
    assert len(encode_calls) == 2                                        # the learned vocabulary finds its ids
    straight, _ = _run(config, dataset, tmp_path / "straight", accelerator)
    assert resumed == straight


# --- text generation --------------------------------------------------------------------------

def test_language_model_second_run_and_resume_read_the_cache(tmp_path, accelerator, corpus_calls):
    dataset = corpus_dataset(tmp_path / "data", text=PATTERN * 40)
    config = lstm_lm_config(max_steps=20, eval_every_steps=10)
    with one_thread():
        first = _run(config, dataset, tmp_path / "first", accelerator)
        assert len(corpus_calls) == 2
        second = _run(config, dataset, tmp_path / "second", accelerator)
        assert len(corpus_calls) == 2 and second == first

        checks = {"count": 0}

        def stop_after_12_steps() -> bool:
            checks["count"] += 1
            return checks["count"] >= 12

        with pytest.raises(Cancelled):
            _run(config, dataset, tmp_path / "run", accelerator, should_stop=stop_after_12_steps)
        resumed, _ = _run(config, dataset, tmp_path / "run", accelerator, resume=True)
        assert len(corpus_calls) == 2 and resumed == first[0]

        bpe = lstm_lm_config(max_steps=20, eval_every_steps=10,
                             template=LstmLmTemplate(block_size=32, hidden_size=48, tokenizer="bpe", vocab_size=280))
        _run(bpe, dataset, tmp_path / "bpe", accelerator)
        assert len(corpus_calls) == 4                                    # another tokenizer: tokenized again
