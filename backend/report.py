"""Statistics for the validation report and the content hash of a prepared dataset.

Token counts are approximate: whitespace-separated words x 1.3, the usual ratio of WordPiece/BPE
tokens to English words. The real tokenizer belongs to the model, which is chosen after upload.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOKENS_PER_WORD = 1.3
TOKEN_ESTIMATE = "whitespace words x 1.3"
HASH_VERSION = 1  # bump when the prepared layout changes, so old hashes stop matching


def summarise(values: np.ndarray) -> dict:
    """min/mean/median/p95/max of a numeric array (zeros when empty)."""
    if values.size == 0:
        return {"min": 0, "mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0}
    median, p95 = np.percentile(values, [50, 95])
    return {"min": int(values.min()), "mean": round(float(values.mean()), 2), "median": float(median),
            "p95": round(float(p95), 2), "max": int(values.max())}


def length_stats(texts: pa.ChunkedArray | pa.Array, token_budget: int) -> tuple[dict, float]:
    """Length statistics in characters and words, and the share of texts over the token budget."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    chars = _numpy(pc.utf8_length(texts))
    # Split chunk by chunk: the word lists of one chunk are small, those of a whole column are not.
    # ASCII whitespace, like the tokenizers' pre-splitting and like regex \S+.
    words = np.concatenate([_numpy(pc.list_value_length(pc.ascii_split_whitespace(chunk))) for chunk in chunks]
                           or [np.zeros(0, np.int32)])
    tokens = np.ceil(words * TOKENS_PER_WORD)
    long_share = float((tokens > token_budget).mean()) if tokens.size else 0.0
    return {"chars": summarise(chars), "words": summarise(words)}, round(long_share, 4)


def duplicate_stats(text_codes: np.ndarray, label_codes: np.ndarray, n_labels: int,
                    is_validation: np.ndarray) -> dict:
    """Exact duplicate rows, texts carrying conflicting labels, validation texts also in train.

    Args:
        text_codes: one integer per row, equal for equal texts (see text_codes()).
        label_codes: label id per row.
        is_validation: True for rows of the validation split.
    """
    # Sorting integer keys is fast and needs no hash table of the texts themselves.
    pairs = np.sort(text_codes.astype(np.int64) * max(n_labels, 1) + label_codes)
    first_of_pair = np.concatenate(([True], pairs[1:] != pairs[:-1])) if pairs.size else pairs.astype(bool)
    pair_texts = pairs[first_of_pair] // max(n_labels, 1)
    repeated = pair_texts[1:] == pair_texts[:-1]  # a text seen with a second label
    conflicting = int(np.count_nonzero(repeated & ~np.concatenate(([False], repeated[:-1])))) if repeated.size else 0
    in_train = np.zeros(int(text_codes.max()) + 1 if text_codes.size else 0, dtype=bool)
    in_train[text_codes[~is_validation]] = True
    return {"exact_duplicates": int(pairs.size - pair_texts.size),
            "conflicting_duplicates": conflicting,
            "train_validation_overlap": int(np.count_nonzero(in_train[text_codes[is_validation]]))}


def text_codes(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An integer per text, equal for equal texts: a dense rank, which sorts row indices instead
    of copying the texts into a hash table (a dictionary would double the memory of the column)."""
    return _numpy(pc.rank(texts, sort_keys="ascending", tiebreaker="dense")).astype(np.int64)


def content_hash(header: dict, columns: list[pa.ChunkedArray | pa.Array | np.ndarray]) -> str:
    """sha256 over the options that shape the data and the exact bytes of every prepared column."""
    digest = hashlib.sha256(json.dumps({"version": HASH_VERSION, **header}, sort_keys=True).encode())
    for column in columns:
        digest.update(b"\x00column")
        if isinstance(column, np.ndarray):
            digest.update(np.ascontiguousarray(column, dtype=np.int64).tobytes())
            continue
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            _hash_strings(digest, chunk)
    return digest.hexdigest()


def _hash_strings(digest, array: pa.Array) -> None:
    """Feed lengths then bytes of a string array, straight from its Arrow buffers (no copies)."""
    if array.null_count:
        array = array.fill_null("")
    digest.update(_numpy(pc.binary_length(array)).astype(np.int64).tobytes())
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[array.offset: array.offset + len(array) + 1]
    if len(array):
        data = array.buffers()[2]
        digest.update(memoryview(data)[int(offsets[0]): int(offsets[-1])])


def _numpy(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values.to_numpy(zero_copy_only=False)


def build_report(*, task: str, source: str, format: str, encoding: str, delimiter: str | None,
                 quoting: bool = False, rows: int, train_rows: int, validation_rows: int,
                 validation_source: str, text_column: str, label_column: str | None,
                 token_budget: int, warnings: list[str], **extra) -> dict:
    """Assemble the JSON-able validation report; every key is present for every task."""
    report = {
        "task": task, "source": source, "format": format, "encoding": encoding,
        "delimiter": delimiter, "quoting": quoting, "text_column": text_column, "label_column": label_column,
        "rows": rows, "train_rows": train_rows, "validation_rows": validation_rows,
        "validation_source": validation_source, "source_rows": rows, "ragged_rows": 0,
        "empty_rows_dropped": 0, "nan_labels_dropped": 0, "exact_duplicates": 0,
        "conflicting_duplicates": 0, "train_validation_overlap": 0, "classes": {}, "labels": [],
        "text_length": {"chars": summarise(np.zeros(0)), "words": summarise(np.zeros(0))},
        "long_text_share": 0.0, "token_budget": token_budget, "token_estimate": TOKEN_ESTIMATE,
        "warnings": list(warnings),
    }
    report.update(extra)
    return _jsonable(report)


def _jsonable(value):
    """numpy scalars and tuples become plain JSON types (json.dumps must accept the report)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    return value
