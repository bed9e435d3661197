"""Language-model metrics: loss (nats per token), perplexity and bits per character.

Bits per character (total NLL / ln 2 / characters the scored tokens cover) compare runs whose
tokenizers differ."""

from __future__ import annotations

import math


def bits_per_character(nll_nats: float, characters: float) -> float:
    """Total negative log-likelihood (nats) as bits per character of the text it scored."""
    return nll_nats / math.log(2) / max(characters, 1e-12)


def lm_metrics(nll_nats: float, tokens: int, characters: float) -> dict[str, float]:
    """Loss (nats per token), perplexity and bits per character from a summed NLL."""
    loss = nll_nats / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),  # e^700 is near float's limit
            "bits_per_char": bits_per_character(nll_nats, characters), "tokens": float(tokens),
            "characters": float(characters)}
