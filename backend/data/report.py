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

from backend.data.text_bytes import fingerprints, word_counts

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
    chars = _numpy(pc.utf8_length(texts))
    # ASCII whitespace, like the tokenizers' pre-splitting and like regex \S+.
    words = word_counts(texts)
    long_share = float(np.count_nonzero(words > _most_words(token_budget)) / words.size) if words.size else 0.0
    return {"chars": summarise(chars), "words": summarise(words)}, round(long_share, 4)


def _most_words(token_budget: int) -> int:
    """The most words whose estimated tokens, ceil(words x 1.3), fit the budget (no float array per text)."""
    words = int(token_budget / TOKENS_PER_WORD) + 2
    while words > 0 and math.ceil(words * TOKENS_PER_WORD) > token_budget:
        words -= 1
    return words


def duplicate_stats(text_codes: np.ndarray, label_codes: np.ndarray, n_labels: int,
                    is_validation: np.ndarray) -> dict:
    """Exact duplicate rows, texts carrying conflicting labels, validation texts also in train.

    Args:
        text_codes: one integer per row, equal for equal texts (see text_codes()).
        label_codes: label id per row.
        is_validation: True for rows of the validation split.
    """
    # Sorting integer keys is fast and needs no hash table of the texts themselves.
    pairs = text_codes.astype(np.int64) * max(n_labels, 1)
    pairs += label_codes
    pairs.sort()  # in place: one array of a million pairs instead of three
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
    """An integer per text, equal exactly when the texts are equal.

    Each text gets a 64-bit fingerprint of its byte length and 48 of its bytes (16 at the start,
    8 at each quarter and at the end), and the fingerprints are sorted: a text whose fingerprint
    no other text shares is unique. Texts that share one are compared in full; where some differ
    (templated texts alike in every sampled byte, say spam that differs only in a phone number),
    the texts of those fingerprints are told apart by a dense rank, which is exact but five times
    slower on 1M rows than all this, so it runs on those rows only.
    Neither copies the texts into a hash table, which would double the memory of the column.
    """
    if texts.null_count or not len(texts):
        return _rank_codes(texts)
    keys = fingerprints(texts)
    order = np.argsort(keys)
    ordered = keys[order]
    # Temporaries go as soon as they are used: this runs at the peak of an ingest's memory.
    del keys
    first_of_key = np.empty(ordered.size, dtype=bool)
    first_of_key[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first_of_key[1:])
    del ordered
    key_ids = np.cumsum(first_of_key, dtype=np.int32) - 1  # per sorted position: 0, 1, 2, ... by fingerprint
    codes = np.empty(len(texts), dtype=np.int64)
    codes[order] = key_ids
    # Every row that repeats a fingerprint, paired with the first row of that fingerprint.
    repeats = np.flatnonzero(~first_of_key)
    firsts = order[np.flatnonzero(first_of_key)[key_ids[repeats]]]
    rows = order[repeats]
    del order, first_of_key
    differ = _differing(texts, rows, firsts)
    del rows, firsts
    if differ is None:  # too many texts alike in the sampled bytes to copy: rank the column where it lies
        del codes, key_ids, repeats
        return _rank_codes(texts)
    if not differ.size:
        return codes
    # Rows of fingerprints shared by different texts: rank just those texts (different
    # fingerprints always mean different texts), numbered after the fingerprint ids.
    shared_rows = np.flatnonzero(np.isin(codes, key_ids[repeats[differ]]))
    if shared_rows.size > _MOST_RANKED:
        del codes, key_ids, repeats, shared_rows
        return _rank_codes(texts)
    codes[shared_rows] = int(key_ids[-1]) + 1 + _rank_codes(take_rows(texts, shared_rows))
    return codes


_COMPARE_BATCH = 1 << 14  # rows compared at once: bounds the memory of the copies compared (~2 MB)
_MOST_RANKED = 1 << 18  # rows whose texts may be copied to be ranked on their own


def _differing(texts: pa.ChunkedArray | pa.Array, rows: np.ndarray, others: np.ndarray) -> np.ndarray | None:
    """Positions i where texts[rows[i]] != texts[others[i]], compared in batches to bound the copies;
    None as soon as there are more than _MOST_RANKED (the caller then ranks the whole column)."""
    found, count = [], 0
    for start in range(0, rows.size, _COMPARE_BATCH):
        batch = slice(start, start + _COMPARE_BATCH)
        same = pc.equal(take_rows(texts, rows[batch]), take_rows(texts, others[batch]))
        found.append(np.flatnonzero(~same.to_numpy(zero_copy_only=False)) + start)
        count += found[-1].size
        if count > _MOST_RANKED:
            return None
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def take_rows(texts: pa.ChunkedArray | pa.Array, rows: np.ndarray) -> pa.Array:
    """texts[rows] as one array, taken chunk by chunk: ChunkedArray.take joins all the chunks of a
    string column into one array first, a full copy of the column for a handful of rows."""
    if isinstance(texts, pa.Array):
        return texts.take(pa.array(rows, pa.int64()))
    bounds = np.cumsum([0] + [len(chunk) for chunk in texts.chunks])
    by_chunk = np.argsort(rows, kind="stable")  # rows sorted, so each chunk's rows are one run
    ordered = rows[by_chunk]
    cuts = np.searchsorted(ordered, bounds)
    pieces = [texts.chunk(index).take(pa.array(ordered[cuts[index]: cuts[index + 1]] - bounds[index], pa.int64()))
              for index in range(texts.num_chunks) if cuts[index + 1] > cuts[index]]
    joined = pa.concat_arrays(pieces) if pieces else pa.array([], texts.type)
    del pieces
    inverse = np.empty_like(by_chunk)
    inverse[by_chunk] = np.arange(by_chunk.size)
    return joined.take(pa.array(inverse, pa.int64()))  # back in the order asked for


def _rank_codes(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Dense rank: sorts row indices instead of copying the texts into a hash table."""
    return _numpy(pc.rank(texts, sort_keys="ascending", tiebreaker="dense")).astype(np.int64)


def content_hash(header: dict, columns: list[pa.ChunkedArray | pa.Array | np.ndarray]) -> str:
    """sha256 over the options that shape the data and the exact bytes of every prepared column."""
    digest = hashlib.sha256(json.dumps({"version": HASH_VERSION, **header}, sort_keys=True).encode())
    for column in columns:
        digest.update(b"\x00column")
        if isinstance(column, np.ndarray):
            digest.update(memoryview(np.ascontiguousarray(column, dtype=np.int64)))
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
