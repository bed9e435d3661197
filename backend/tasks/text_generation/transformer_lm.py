"""Transformer language models (decoders) in Hugging Face format.

Two ways to get one:
- from scratch: a GPT-2-style decoder (GPT2LMHeadModel) built from a GPT2Config sized by the
  template, with a char or BPE tokenizer built from the training text;
- fine-tuned: any pretrained causal LM (a local folder or a Hub id such as distilgpt2) with its
  own tokenizer, via AutoModelForCausalLM.

    input_ids (B, T) -> token + position embeddings -> N x (causal self-attention, MLP) -> LN
                     -> linear tied to the token embedding (B, T, V)

Both save with `save_pretrained` (config.json, model.safetensors, generation_config.json,
tokenizer files), so `transformers.pipeline("text-generation", model=folder)` loads them. Remote
code is never trusted and weights are only read from safetensors files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel,
                          PreTrainedModel, PreTrainedTokenizerBase)

from backend.tasks.text_generation.configs import TransformerLmFinetuneTemplate, TransformerLmTemplate
from backend.errors import UserError
from backend.tasks.base import clamp_length
from backend.tasks.text_classification.transformer import resolve_base_model

log = logging.getLogger(__name__)


def build_gpt2(template: TransformerLmTemplate, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2-style decoder sized by the template, for `tokenizer`'s vocabulary."""
    end_of_text = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=template.block_size, n_embd=template.hidden_size,
        n_layer=template.num_layers, n_head=template.num_heads, resid_pdrop=template.dropout,
        embd_pdrop=template.dropout, attn_pdrop=template.dropout, bos_token_id=end_of_text,
        eos_token_id=end_of_text, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
    # Padding only matters to `generate` (batches of prompts); we never pad training blocks, and a
    # pad id in the model config makes transformers warn whenever that id shows up in the input.
    model.generation_config.pad_token_id = end_of_text
    return model


def build_finetune_lm(template: TransformerLmFinetuneTemplate,
                      ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, int]:
    """The pretrained causal LM and its tokenizer, and the block size its positions allow."""
    source = resolve_base_model(template.base_model)
    try:
        AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"Base model '{template.base_model}' could not be loaded: no network / not a local folder "
            f"({str(exc).splitlines()[0][:200]}). Give the path of a local Hugging Face causal LM folder "
            "(e.g. a downloaded distilgpt2), or run on a machine that can reach the Hugging Face Hub.") from exc
    try:
        # float32 weights: mixed precision (from Settings) is applied by Accelerate's autocast.
        model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, trust_remote_code=False,
                                                     dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"Base model '{template.base_model}' could not be loaded as a causal language model: "
            f"{str(exc).splitlines()[0][:300]}. It needs model.safetensors weights and a standard decoder "
            "architecture (GPT-2, Llama, ...).") from exc
    block_size = clamp_length(template.block_size, max_positions(model))
    if block_size < template.block_size:
        log.info("block size capped at %d by %s's position embeddings", block_size, source)
    if tokenizer.eos_token_id is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.eos_token_id
    return model, tokenizer, block_size


def max_positions(model: PreTrainedModel) -> int:
    """Longest context the model takes (position embeddings); models without a limit get a large one."""
    config = model.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 1_000_000


def save_causal_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """save_pretrained the model (safetensors) and the tokenizer into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def load_causal_lm(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved causal LM and its tokenizer, from safetensors only."""
    model = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True, trust_remote_code=False,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    return model, tokenizer
