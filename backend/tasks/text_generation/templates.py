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


def build_lm(config: TrainConfig, train_text: str, tokenizer: PreTrainedTokenizerBase | None = None,
             ) -> tuple[nn.Module, PreTrainedTokenizerBase, int]:
    """A fresh model, its tokenizer and the block size for `config.template`.

    From-scratch templates build their tokenizer from `train_text` unless `tokenizer` (the one
    saved with a checkpoint) is given; the fine-tuned template uses its base model's.
    """
    template = config.template
    if template.kind == "transformer-lm-finetune":
        return build_finetune_lm(template)
    if template.kind not in OWN_TOKENIZER_LM_KINDS:
        raise ValueError(f"template {template.kind!r} is not a language model")
    if tokenizer is None:
        tokenizer = build_lm_tokenizer(template.tokenizer, train_text, template.vocab_size, template.block_size)
    if template.kind == "lstm-lm":
        return build_lstm_lm(template, tokenizer), tokenizer, template.block_size
    return build_gpt2(template, tokenizer), tokenizer, template.block_size


def save_lm(model: nn.Module, tokenizer: PreTrainedTokenizerBase, block_size: int, folder: Path) -> None:
    """Save weights (safetensors), config and tokenizer files into `folder`."""
    if isinstance(model, LstmLanguageModel):
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
    if isinstance(model, LstmLanguageModel) or isinstance(getattr(model, "module", None), LstmLanguageModel):
        return model(input_ids)[0]
    return model(input_ids=input_ids, use_cache=False).logits
