"""Tiny text corpora, tiny language-model configs and runs trained once per test session.

Imported explicitly by tests/backend/training/test_windows*.py and tests/backend/tasks/test_generator.py. Runs are cached in
this module (not pytest fixtures) so the two test files share them instead of training twice.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import atexit
import contextlib
import functools
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch

from backend.config import TrainConfig

from backend.tasks.text_generation.configs import LstmLmTemplate, TransformerLmFinetuneTemplate, TransformerLmTemplate
from storage.records import DatasetRecord
from tests.backend.training_fixtures import Recorder, never

# A repeating pattern: after a few characters of context every next character is certain, so a
# model that learns it gets a validation loss near 0 (a uniform guess over its 20 characters: 3.0).
PATTERN = "the cat sat on a mat.\nbig dogs run far!\n"
_ROOT = Path(tempfile.mkdtemp(prefix="modelsmith-lm-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@contextlib.contextmanager
def one_thread():
    """Tiny models train fastest on one thread; with other processes on the CPU, two can be 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def corpus_dataset(folder: Path, text: str = PATTERN * 60, validation_share: float = 0.1,
                   name: str = "pattern") -> DatasetRecord:
    """Write a text-generation dataset (one `text` row per split, split by position) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    cut = int(len(text) * (1 - validation_share))
    pd.DataFrame({"text": [text[:cut]]}).to_parquet(folder / "train.parquet", index=False)
    pd.DataFrame({"text": [text[cut:]]}).to_parquet(folder / "validation.parquet", index=False)
    return DatasetRecord(id=1, name=name, task="text-generation", content_hash="1" * 64, path=str(folder),
                         text_column="text", label_column=None, rows=2, train_rows=1, validation_rows=1)


def lstm_lm_config(**overrides) -> TrainConfig:
    """A tiny character LSTM LM that learns the pattern in a few seconds."""
    template = overrides.pop("template", LstmLmTemplate(block_size=32, hidden_size=48))
    values = dict(dataset_id=1, task="text-generation", template=template, batch_size=16, learning_rate=1e-2,
                  max_steps=80, eval_every_steps=20, eval_batches=2, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


def transformer_lm_config(**overrides) -> TrainConfig:
    """A tiny character GPT-2 that learns the pattern in a few seconds."""
    template = overrides.pop("template", TransformerLmTemplate(block_size=32, hidden_size=32, num_layers=2,
                                                               num_heads=2))
    values = dict(dataset_id=1, task="text-generation", template=template, batch_size=16, learning_rate=1e-2,
                  max_steps=80, eval_every_steps=20, eval_batches=2, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


def tiny_gpt2_folder(folder: Path) -> Path:
    """A tiny random GPT-2 + byte-level BPE tokenizer saved in HF format: a local 'pretrained' causal LM."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from backend.tasks.text_generation.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(PATTERN * 20, vocab_size=280, block_size=64)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def finetune_lm_config(base_model: str, **overrides) -> TrainConfig:
    """A short fine-tuning run of a local causal LM folder."""
    values = dict(dataset_id=1, task="text-generation",
                  template=TransformerLmFinetuneTemplate(base_model=base_model, block_size=32), batch_size=16,
                  learning_rate=1e-2, max_steps=60, eval_every_steps=20, eval_batches=2, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


@functools.cache
def dataset() -> DatasetRecord:
    """The shared pattern dataset."""
    return corpus_dataset(_ROOT / "data")


@functools.cache
def trained(kind: str):
    """(TrainResult, Recorder) of one finished tiny run per template kind, trained once per session."""
    from backend.training.run import get_accelerator, train

    if kind == "lstm-lm":
        config = lstm_lm_config()
    elif kind == "transformer-lm":
        config = transformer_lm_config()
    else:
        config = finetune_lm_config(str(tiny_gpt2_folder(_ROOT / "tiny-gpt2")))
    recorder = Recorder()
    with one_thread():
        result = train(config, dataset(), _ROOT / f"run-{kind}", on_progress=recorder, should_stop=never,
                       accelerator=get_accelerator("cpu"))
    return result, recorder
