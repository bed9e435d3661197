"""Batches for a language model: the text as one array of token ids, random windows of it for
training, fixed blocks spread over the validation text for evaluation (nanoGPT's get_batch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from backend.data.store import load_split
from backend.data.token_cache import cached_arrays, encoding_version, tokenizer_fingerprint
from backend.errors import UserError
from backend.tasks.text_generation import tokenization
from backend.tasks.text_generation.tokenization import encode_corpus
from storage.records import DatasetRecord


@dataclass(frozen=True)
class EvalBlocks:
    """Fixed validation blocks: inputs and targets (K, T), and the characters the targets cover."""

    inputs: torch.Tensor
    targets: torch.Tensor
    characters: float


def read_text(dataset: DatasetRecord, split: str) -> str:
    """The text of one stored split (its rows joined by newlines)."""
    frame = load_split(dataset, split)
    if "text" not in frame:
        raise UserError(f"The {split} split of dataset '{dataset.name}' has no text column; "
                        "upload it again as a text-generation dataset.")
    return "\n".join("" if text is None or text != text else str(text) for text in frame["text"].tolist())


# What decides the ids besides the tokenizer: how we read and encode the text, and the libraries' versions.
ENCODING_VERSION = encoding_version(tokenization, read_text)


def encoded_text(dataset: DatasetRecord, split: str, text: str,
                 tokenizer: PreTrainedTokenizerBase) -> tuple[np.ndarray, np.ndarray]:
    """`encode_corpus(tokenizer, text)` of a stored split (ids int64, characters per token float64), read
    from the dataset's token cache when an earlier run or this run before a resume encoded it."""
    fingerprint = tokenizer_fingerprint(tokenizer)
    options = None
    if fingerprint is not None:
        # encode_corpus calls the backend directly: a truncation or padding set on it applies.
        backend = tokenizer.backend_tokenizer
        options = {"tokenizer": fingerprint, "truncation": backend.truncation, "padding": backend.padding,
                   "characters": len(text), **ENCODING_VERSION}

    def build() -> dict[str, np.ndarray]:
        ids, characters = encode_corpus(tokenizer, text)
        # A fast tokenizer's counts are whole characters: int32 holds them exactly.
        return {"ids": ids.astype(np.int32), "characters": characters.astype(np.int32)}

    arrays = cached_arrays(dataset, split, options, build)
    return arrays["ids"].astype(np.int64), arrays["characters"].astype(np.float64)


def sample_batch(ids: torch.Tensor, block_size: int, batch_size: int, seed: int, step: int,
                 micro_batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows (B, T) of `ids` and the tokens that follow them, seeded by (seed, step, micro_batch)."""
    rng = np.random.default_rng([seed, step, micro_batch])
    starts = torch.from_numpy(rng.integers(0, len(ids) - block_size, size=batch_size))
    windows = ids[starts[:, None] + torch.arange(block_size + 1)]   # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def make_eval_blocks(ids: np.ndarray, characters: np.ndarray, block_size: int, count: int) -> EvalBlocks:
    """`count` blocks spread evenly over the text; all non-overlapping blocks when fewer fit."""
    block = min(block_size, len(ids) - 1)
    available = (len(ids) - 1) // block
    if available <= count:
        starts = np.arange(available) * block
    else:
        starts = np.linspace(0, len(ids) - 1 - block, count).round().astype(np.int64)
    index = starts[:, None] + np.arange(block + 1)                 # (K, T + 1)
    windows = torch.from_numpy(ids[index])
    return EvalBlocks(inputs=windows[:, :-1], targets=windows[:, 1:],
                      characters=float(characters[index[:, 1:]].sum()))
