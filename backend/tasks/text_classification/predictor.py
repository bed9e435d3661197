"""Load a finished run once (cached) and classify texts with it.

Weights are read from safetensors only. Texts are tokenized and padded exactly as during
evaluation (backend.tasks.text_classification.tokenization.encode / pad_batch), so a reloaded model gives the scores the
trainer saw. The tokenizer's Rust backend is not safe to call from two threads at once (its
truncation settings are mutable state), hence the lock around tokenization.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from backend.errors import UserError
from backend.serving.model_cache import RunFolderCache
from backend.tasks.text_classification.templates import load_model, logits_of
from backend.tasks.text_classification.tokenization import encode, pad_batch

log = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Predictor:
    """A classifier ready to predict: model (eval mode, on its device), tokenizer and label names."""

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str],
                 max_length: int, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self._tokenizer_lock = threading.Lock()

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
        """[{"label": best label, "scores": {label: probability}}] for each text, in order."""
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1 (got {batch_size}).")
        # A lone surrogate ("\ud800", from JSON or bytes decoded with errors) is no character: the
        # tokenizer refuses the whole call, so it becomes U+FFFD like any undecodable byte.
        texts = [_LONE_SURROGATE.sub("\ufffd", "" if text is None else str(text)) for text in texts]
        with self._tokenizer_lock:
            rows = encode(self.tokenizer, texts, self.max_length)
        pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Batch similar lengths together so short texts are not padded to the longest one.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        results: list[dict | None] = [None] * len(rows)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = {k: v.to(self.device) for k, v in pad_batch([rows[i] for i in chunk], pad_token_id).items()}
                probabilities = torch.softmax(logits_of(self.model, batch).float(), dim=-1).cpu()  # (B, C)
                for i, row in zip(chunk, probabilities.tolist()):
                    best = max(range(len(row)), key=row.__getitem__)
                    results[i] = {"label": self.labels[best], "scores": dict(zip(self.labels, row))}
        return results  # type: ignore[return-value]


def _load_predictor(folder: Path, device: str) -> Predictor:
    model, tokenizer, labels, max_length = load_model(folder)
    log.info("loaded %s on %s", folder, device)
    return Predictor(model, tokenizer, labels, max_length, device)


_PREDICTORS: RunFolderCache[Predictor] = RunFolderCache(_load_predictor)


def load_predictor(output_dir: Path | str, device: str | None = None) -> Predictor:
    """The Predictor of a run folder, cached (a few at a time) until its model file changes."""
    return _PREDICTORS.get(output_dir, device)


def clear_cache() -> None:
    """Forget all cached predictors (frees their memory)."""
    _PREDICTORS.clear()
