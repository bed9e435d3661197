"""Settings of the text-generation (language model) templates: one frozen pydantic class per template."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.tasks.base import TemplateConfig

# Default base of the fine-tuned language model: a Hub id, so it needs network (or the HF cache).
DEFAULT_CAUSAL_LM = "distilgpt2"

LmTokenizer = Literal["char", "bpe"]
_LM_TOKENIZER_HELP = "char: one token per character; bpe: byte-level BPE vocabulary trained on the text."
_BLOCK_SIZE_HELP = "Tokens of context per training block (the model's window when generating)."


class LstmLmTemplate(TemplateConfig):
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


class TransformerLmTemplate(TemplateConfig):
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


class TransformerLmFinetuneTemplate(TemplateConfig):
    """Fine-tune a pretrained causal language model (e.g. distilgpt2) on your text."""

    kind: Literal["transformer-lm-finetune"] = "transformer-lm-finetune"
    base_model: str = Field(DEFAULT_CAUSAL_LM, description="Local folder or Hub id of a pretrained causal LM "
                                                            "(a Hub id needs network or the Hugging Face cache).")
    block_size: int = Field(128, ge=8, le=8192, description=_BLOCK_SIZE_HELP + " Capped by the model's positions.")
