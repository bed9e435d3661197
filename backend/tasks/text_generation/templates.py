"""Language-model templates: pick the right family for a config or a saved folder.

The same four questions as for classifiers: build (model + tokenizer + block size for a run),
save (into a run folder), load (back from it) and logits (one shape, (B, T, V), whatever the
family returns).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from backend.config import TrainConfig
from backend.tasks.text_generation.tokenization import build_lm_tokenizer
from backend.tasks.text_generation.lstm_lm import LstmLanguageModel, build_lstm_lm, is_lstm_lm_folder, load_lstm_lm, save_lstm_lm
from backend.tasks.text_generation.transformer_lm import (build_finetune_lm, build_gpt2, load_causal_lm, max_positions,
                                              save_causal_lm)

OWN_TOKENIZER_LM_KINDS: tuple[str, ...] = ("lstm-lm", "transformer-lm")  # vocabulary built per run


def _build_finetune(config: TrainConfig, train_text: str, tokenizer):
    return build_finetune_lm(config.template)  # the base model's own tokenizer; block size capped by it


def _build_lstm(config: TrainConfig, train_text: str, tokenizer):
    tokenizer = tokenizer or _own_tokenizer(config, train_text)
    return build_lstm_lm(config.template, tokenizer), tokenizer, config.template.block_size


def _build_gpt2(config: TrainConfig, train_text: str, tokenizer):
    tokenizer = tokenizer or _own_tokenizer(config, train_text)
    return build_gpt2(config.template, tokenizer), tokenizer, config.template.block_size


def _own_tokenizer(config: TrainConfig, train_text: str) -> PreTrainedTokenizerBase:
    template = config.template
    return build_lm_tokenizer(template.tokenizer, train_text, template.vocab_size, template.block_size)


# Each template kind's builder; the Task lists the kinds (backend.tasks.text_generation.task).
BUILDERS = {"lstm-lm": _build_lstm, "transformer-lm": _build_gpt2, "transformer-lm-finetune": _build_finetune}


def build_lm(config: TrainConfig, train_text: str, tokenizer: PreTrainedTokenizerBase | None = None,
             ) -> tuple[nn.Module, PreTrainedTokenizerBase, int]:
    """A fresh model, its tokenizer and the block size for `config.template`.

    From-scratch templates build their tokenizer from `train_text` unless `tokenizer` (the one
    saved with a checkpoint) is given; the fine-tuned template uses its base model's.
    """
    if config.template.kind not in BUILDERS:
        raise ValueError(f"template {config.template.kind!r} is not a language model")
    return BUILDERS[config.template.kind](config, train_text, tokenizer)


def is_lstm_lm(model: nn.Module) -> bool:
    """Our own LSTM language model (a plain nn.Module), bare or wrapped (DDP's .module)?"""
    model = getattr(model, "module", model)
    return getattr(model, "family", None) == LstmLanguageModel.family


def save_lm(model: nn.Module, tokenizer: PreTrainedTokenizerBase, block_size: int, folder: Path) -> None:
    """Save weights (safetensors), config and tokenizer files into `folder`."""
    if is_lstm_lm(model):
        save_lstm_lm(model, tokenizer, block_size, folder)
    else:
        save_causal_lm(model, tokenizer, folder)


def load_lm(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase, int]:
    """Load a saved language model folder: (model, tokenizer, context length); safetensors only."""
    if is_lstm_lm_folder(folder):
        return load_lstm_lm(folder)
    model, tokenizer = load_causal_lm(folder)
    return model, tokenizer, max_positions(model)


def lm_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits (B, T, V) of any language-model template."""
    if is_lstm_lm(model):
        return model(input_ids)[0]  # (logits, state)
    return model(input_ids=input_ids, use_cache=False).logits
