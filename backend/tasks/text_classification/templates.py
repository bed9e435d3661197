"""Text-classification templates: one file per family; this module picks the right one for a config or folder.

Every family answers three questions the trainer and the predictor ask:
build (fresh model + tokenizer for a run), save (into a run folder) and load (back from it).
Model outputs differ (HF models return an object with `.logits`, the LSTM a tensor), so
`logits_of` gives the trainer one shape: (B, C).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from backend.config import TrainConfig
from backend.tasks.text_classification.lstm import LstmClassifier, build_lstm, is_lstm_folder, load_lstm, save_lstm
from backend.tasks.text_classification.transformer import (build_finetuned, build_scratch, load_transformer,
                                                          save_transformer)

OWN_TOKENIZER_KINDS: tuple[str, ...] = ("transformer-scratch", "lstm")  # vocabulary learned per run


def _build_finetuned(config: TrainConfig, labels, train_texts, tokenizer):
    return build_finetuned(config.template, labels, config.max_length)  # the base model's own tokenizer


def _build_scratch(config: TrainConfig, labels, train_texts, tokenizer):
    return build_scratch(config.template, labels, train_texts, config.max_length, tokenizer)


def _build_lstm(config: TrainConfig, labels, train_texts, tokenizer):
    return build_lstm(config.template, labels, train_texts, config.max_length, tokenizer)


# Each template kind's builder; the Task lists the kinds (backend.tasks.text_classification.task).
BUILDERS: dict[str, Callable[..., tuple[nn.Module, PreTrainedTokenizerBase]]] = {
    "transformer": _build_finetuned,
    "transformer-scratch": _build_scratch,
    "lstm": _build_lstm,
}
TEMPLATE_KINDS: tuple[str, ...] = tuple(BUILDERS)


def build_model(config: TrainConfig, labels: Sequence[str], train_texts: Sequence[str],
                tokenizer: PreTrainedTokenizerBase | None = None) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """A freshly initialised model and its tokenizer for `config.template`.

    Templates that learn their own vocabulary train it on `train_texts`, unless `tokenizer` (say,
    the one saved with a checkpoint) is given; the fine-tuned Transformer uses its base model's.
    """
    if config.template.kind not in BUILDERS:
        raise ValueError(f"unknown template {config.template.kind!r}")
    return BUILDERS[config.template.kind](config, labels, train_texts, tokenizer)


def _is_lstm(model: nn.Module) -> bool:
    # Our own LSTM is a plain nn.Module; every other template is a Hugging Face model with a config.
    return getattr(model, "family", None) == LstmClassifier.family


def save_model(model: nn.Module, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str],
               max_length: int, folder: Path) -> None:
    """Save weights (safetensors), config with label names and tokenizer files into `folder`."""
    if _is_lstm(model):
        save_lstm(model, tokenizer, labels, max_length, folder)
    else:
        save_transformer(model, tokenizer, folder)


def load_model(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase, list[str], int]:
    """Load a saved model folder: (model, tokenizer, labels, max_length); safetensors only."""
    if is_lstm_folder(folder):
        return load_lstm(folder)
    return load_transformer(folder)


def logits_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Class logits (B, C) of any template for a batch with input_ids and attention_mask."""
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return output if isinstance(output, torch.Tensor) else output.logits  # HF models return an output object


def vocab_size_of(model: nn.Module) -> int:
    """Rows of the input embedding: every token id must be below this."""
    return model.get_input_embeddings().num_embeddings


def num_labels_of(model: nn.Module) -> int:
    """Width of the classification head."""
    return model.num_labels if _is_lstm(model) else int(model.config.num_labels)
