"""A stored dataset's token ids and learned vocabularies, through the dataset's token cache.

A second run on the same dataset (or a resume) reads back what the first one computed instead of
tokenizing again (backend.data.token_cache): the ids of each split for one tokenizer and length,
and the vocabulary the `lstm` / `transformer-scratch` templates learn from the training texts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from backend.data.token_cache import cached_arrays, encoding_version, tokenizer_fingerprint
from backend.tasks.text_classification import tokenization
from backend.tasks.text_classification.batching import read_split
from backend.tasks.text_classification.tokenization import TokenizerKind, encode, train_tokenizer, wrap_tokenizer
from storage.records import DatasetRecord

# What decides the ids besides the tokenizer and the length: how we read, learn and encode, and the
# libraries' versions.
ENCODING_VERSION = encoding_version(tokenization, read_split)


def encoded_split(dataset: DatasetRecord, split: str, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase,
                  max_length: int) -> list[list[int]]:
    """`encode(tokenizer, texts, max_length)` of a stored split, read from the dataset's token cache when
    an earlier run (or this run before a resume) encoded it the same way."""
    fingerprint = tokenizer_fingerprint(tokenizer)
    options = None if fingerprint is None else {"tokenizer": fingerprint, "max_length": max_length,
                                                "texts": len(texts), **ENCODING_VERSION}
    arrays = cached_arrays(dataset, split, options, lambda: flatten(encode(tokenizer, texts, max_length)))
    return unflatten(arrays)


def learned_tokenizer(dataset: DatasetRecord, train_texts: Sequence[str], kind: TokenizerKind, vocab_size: int,
                      max_length: int) -> PreTrainedTokenizerFast:
    """`train_tokenizer(train_texts, ...)` on the dataset's training split, learned once per dataset,
    kind and size; every run (the first too) gets it back from its saved JSON, as a resume does."""
    options = {"learned_vocabulary": kind, "vocab_size": vocab_size, "texts": len(train_texts), **ENCODING_VERSION}

    def learn() -> dict[str, np.ndarray]:
        state = train_tokenizer(train_texts, kind, vocab_size, max_length).backend_tokenizer.to_str()
        return {"tokenizer_json": np.frombuffer(state.encode("utf-8"), dtype=np.uint8)}

    state = cached_arrays(dataset, "train", options, learn)["tokenizer_json"].tobytes().decode("utf-8")
    return wrap_tokenizer(Tokenizer.from_str(state), max_length)


def flatten(rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Token rows as one flat int32 array of ids and int64 row offsets (N + 1,)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((token for row in rows for token in row), dtype=np.int32, count=int(offsets[-1]))
    return {"ids": ids, "offsets": offsets}


def unflatten(arrays: dict[str, np.ndarray]) -> list[list[int]]:
    """The token rows `flatten` stored, as lists of Python ints (what `encode` returns)."""
    ids, offsets = arrays["ids"].tolist(), arrays["offsets"].tolist()
    return [ids[start:end] for start, end in zip(offsets, offsets[1:])]
