"""Tiny datasets, tiny models and a progress recorder for the trainer/template/inference tests.

Imported explicitly by those tests (tests/backend/conftest.py belongs to another module's tests).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random
from pathlib import Path

import pandas as pd

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import LstmTemplate, TransformerScratchTemplate, TransformerTemplate
from storage.records import DatasetRecord

FILLER = ("the movie plot was a story about people who went to town and met friends there on weekend "
          "with music lights food cars rain sun morning evening").split()
RULE_WORDS = {"positive": "good", "negative": "bad"}


def rule_rows(count: int, seed: int) -> list[tuple[str, str]]:
    """Texts of random filler with one label word: 'good' -> positive, 'bad' -> negative."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = "positive" if i % 2 == 0 else "negative"
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 14))]
        words.insert(rng.randint(0, len(words)), RULE_WORDS[label])
        rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def make_dataset(folder: Path, train: list[tuple[str, str]], validation: list[tuple[str, str]],
                 labels: list[str] | None = None, name: str = "rule") -> DatasetRecord:
    """Write train/validation Parquet files into `folder` and describe them as a DatasetRecord."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("validation", validation)):
        pd.DataFrame(rows, columns=["text", "label"]).to_parquet(folder / f"{split}.parquet", index=False)
    all_labels = [label for _, label in train + validation]
    labels = sorted(set(all_labels)) if labels is None else labels
    return DatasetRecord(
        id=1, name=name, task="text-classification", content_hash="0" * 64, path=str(folder),
        text_column="text", label_column="label", rows=len(train) + len(validation), train_rows=len(train),
        validation_rows=len(validation), labels=labels,
        classes={label: all_labels.count(label) for label in set(all_labels)})


def rule_dataset(folder: Path, train_rows: int = 400, validation_rows: int = 100) -> DatasetRecord:
    """The good/bad rule dataset in `folder`."""
    return make_dataset(folder, rule_rows(train_rows, seed=1), rule_rows(validation_rows, seed=2))


def tiny_bert_folder(folder: Path) -> Path:
    """A tiny random BERT + WordPiece tokenizer saved in HF format: a local 'pretrained' base model."""
    from transformers import BertConfig, BertModel

    from backend.tasks.text_classification.tokenization import train_tokenizer

    tokenizer = train_tokenizer([text for text, _ in rule_rows(300, seed=3)], "wordpiece", 120, 64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def lstm_config(**overrides) -> TrainConfig:
    """A small LSTM run that learns the rule in a few seconds on a CPU."""
    template = LstmTemplate(vocab_size=120, embedding_dim=32, hidden_size=32, dropout=0.1)
    values = dict(dataset_id=1, template=template, epochs=3, batch_size=16, learning_rate=5e-3,
                  max_length=32, log_every_steps=5, seed=7, warmup_ratio=0.1)
    return TrainConfig(**{**values, **overrides})


def scratch_config(**overrides) -> TrainConfig:
    """A tiny from-scratch BERT run."""
    template = TransformerScratchTemplate(vocab_size=120, hidden_size=32, num_layers=2, num_heads=2,
                                          intermediate_size=64, dropout=0.0)
    values = dict(dataset_id=1, template=template, epochs=3, batch_size=16, learning_rate=2e-3,
                  max_length=32, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


def finetune_config(base_model: str, **overrides) -> TrainConfig:
    """A fine-tuning run on a local base model folder (or the bundled default)."""
    values = dict(dataset_id=1, template=TransformerTemplate(base_model=base_model), epochs=3, batch_size=16,
                  learning_rate=2e-3, max_length=32, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


class Recorder:
    """An on_progress callback that keeps every (step, values) it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []

    def __call__(self, step: int, values: dict[str, float]) -> None:
        self.calls.append((step, dict(values)))

    def series(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of every call that reported `key`."""
        return [(step, values[key]) for step, values in self.calls if key in values]


def never() -> bool:
    """A should_stop that never asks to stop."""
    return False


def quality(metrics: dict) -> dict:
    """A run's metrics without its time breakdown (which differs between any two runs)."""
    return {key: value for key, value in metrics.items() if key != "timing_seconds"}
