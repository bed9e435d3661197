"""The pre-launch estimate builds the real model and times real steps."""

from pathlib import Path

import pandas as pd
import pytest

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import LstmTemplate
from backend.errors import UserError
from backend.training.estimate import estimate
from storage.records import DatasetRecord


@pytest.fixture
def dataset(tmp_path) -> DatasetRecord:
    texts = [f"a {'good' if i % 2 else 'bad'} day number {i}" for i in range(60)]
    frame = pd.DataFrame({"text": texts, "label": ["happy" if i % 2 else "sad" for i in range(60)]})
    frame.to_parquet(tmp_path / "train.parquet")
    frame.head(10).to_parquet(tmp_path / "validation.parquet")
    return DatasetRecord(id=1, name="toy", task="text-classification", content_hash="x", path=str(tmp_path),
                         text_column="text", label_column="label", rows=70, train_rows=60, validation_rows=10,
                         labels=["happy", "sad"], classes={"happy": 35, "sad": 35})


def config(**template) -> TrainConfig:
    tiny = {"vocab_size": 100, "embedding_dim": 16, "hidden_size": 16, **template}
    return TrainConfig(dataset_id=1, batch_size=8, template=LstmTemplate(**tiny))


@pytest.mark.slow
def test_estimate_counts_parameters_memory_and_time(dataset):
    small = estimate(config(), dataset)
    assert small.parameters == small.trainable_parameters > 0
    assert small.weights_bytes == small.parameters * 4 and small.training_state_bytes == small.parameters * 12
    assert small.activation_bytes > 0
    assert small.memory_bytes == small.weights_bytes + small.training_state_bytes + small.activation_bytes
    assert small.steps_per_epoch == 8 and small.seconds_per_step > 0
    assert small.seconds_per_epoch == pytest.approx(small.seconds_per_step * 8)
    assert small.total_steps == 8 * 3 and small.seconds_total == pytest.approx(small.seconds_per_epoch * 3)
    # The range comes from the timed steps: the median lies inside it; the load is read, when the OS gives it.
    assert 0 < small.seconds_per_step_low <= small.seconds_per_step <= small.seconds_per_step_high
    assert small.cpu_count >= 1 and (small.load_average is None or small.load_average >= 0)
    wider = estimate(config(hidden_size=64), dataset)
    assert wider.parameters > small.parameters and wider.activation_bytes > small.activation_bytes


def test_estimate_says_when_it_cannot_help(dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)}).to_parquet(
        empty / "train.parquet")
    with pytest.raises(UserError, match="no training rows"):
        estimate(config(), DatasetRecord(**{**dataset.__dict__, "path": str(empty), "train_rows": 0}))


def test_estimate_of_a_language_model_counts_windows_of_its_text(tmp_path):
    from tests.backend.lm_fixtures import PATTERN, corpus_dataset, lstm_lm_config

    text = PATTERN * 60
    dataset = corpus_dataset(tmp_path, text)
    config = lstm_lm_config(batch_size=4, max_steps=0, epochs=2)
    result = estimate(config, dataset)
    tokens_per_step = 4 * config.template.block_size
    train_chars = int(len(text) * 0.9)  # a char tokenizer: one token per character of the training part
    assert result.steps_per_epoch == pytest.approx(train_chars / tokens_per_step, abs=2)
    assert result.total_steps == result.steps_per_epoch * 2
    assert result.parameters > 0 and result.activation_bytes > 0 and result.seconds_per_step > 0
    fixed = estimate(lstm_lm_config(batch_size=4, max_steps=7), dataset)
    assert fixed.total_steps == 7 and fixed.seconds_total == pytest.approx(fixed.seconds_per_step * 7)
