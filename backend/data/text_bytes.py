"""Per-text numbers computed straight from the bytes of Arrow string arrays, with numpy.

An Arrow string array is one buffer of UTF-8 bytes plus offsets; looking at those buffers in
numpy gives word counts and fingerprints of a million texts without a Python object per text and
without copying the column. Work goes in windows of rows so that temporaries stay small.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

__all__ = ["fingerprints", "word_counts"]

WINDOW_ROWS = 1 << 16  # rows per numpy pass: temporaries of a few MB for ordinary texts
_MIX = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's multipliers: every input bit moves many output bits
_SEED = np.uint64(0x94D049BB133111EB)
_ALL_BYTES = np.uint64(0xFFFFFFFFFFFFFFFF)


def word_counts(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Runs of non-whitespace per text (regex \\S+ with ASCII whitespace: space, \\t \\n \\v \\f \\r).

    Multi-byte UTF-8 characters never contain those bytes, so counting on bytes is exact.
    """
    return _per_window(texts, _window_word_counts, np.int32)


def fingerprints(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A uint64 per text from its byte length and six 8-byte windows (two at the start, quarters, end).

    Equal texts get equal fingerprints; different texts almost always get different ones, but
    texts that agree in every sampled byte collide, so callers must confirm equality.
    """
    return _per_window(texts, _window_fingerprints, np.uint64)


def _per_window(texts, function, dtype) -> np.ndarray:
    result = np.empty(len(texts), dtype=dtype)  # filled in place: no list of parts to concatenate
    done = 0
    for offsets, data in _windows(texts):
        result[done: done + offsets.size - 1] = function(offsets, data)
        done += offsets.size - 1
    return result


def _windows(texts: pa.ChunkedArray | pa.Array) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(offsets starting at 0, the bytes they point into) for up to WINDOW_ROWS rows at a time."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    for chunk in chunks:
        if not len(chunk):  # an empty chunk may have no buffers at all
            continue
        if chunk.null_count:
            chunk = chunk.fill_null("")
        offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        all_offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset: chunk.offset + len(chunk) + 1]
        data = chunk.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        for start in range(0, len(chunk), WINDOW_ROWS):
            offsets = all_offsets[start: start + WINDOW_ROWS + 1].astype(np.int64)
            low, high = int(offsets[0]), int(offsets[-1])
            yield offsets - low, data[low:high]


def _window_word_counts(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    # Whitespace is bytes 9-13 and 32. One comparison finds those and the other bytes below 32,
    # control characters that are rare in text and are then put right one by one.
    space = data <= 32
    controls = np.flatnonzero(data < 32)
    if controls.size:
        space[controls] = (data[controls] >= 9) & (data[controls] <= 13)
    # A word starts at a non-space byte that follows a space or begins its text.
    follows_space = np.empty(data.size, dtype=bool)
    follows_space[:1] = True
    follows_space[1:] = space[:-1]
    text_starts = offsets[:-1]
    follows_space[text_starts[text_starts < data.size]] = True
    word_starts = np.flatnonzero(np.greater(follows_space, space, out=follows_space))  # follows & ~space
    return np.diff(np.searchsorted(word_starts, offsets))


def _window_fingerprints(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    # The bytes plus 8 zero bytes, seen as a uint64 starting at every byte (strides of 1), so one
    # gather reads 8 bytes of every text. Bytes past the end of a short text are masked off.
    padded = np.zeros(data.size + 8, dtype=np.uint8)
    padded[: data.size] = data
    windows = np.ndarray((data.size + 1,), dtype="<u8", buffer=padded, strides=(1,))
    starts, lengths = offsets[:-1], np.diff(offsets)
    keep = np.where(lengths >= 8, _ALL_BYTES,
                    (np.uint64(1) << (np.minimum(lengths, 7) * 8).astype(np.uint64)) - np.uint64(1))
    spare = np.maximum(lengths - 8, 0)  # the last full window of a text starts this far in
    key = lengths.astype(np.uint64) * _SEED
    # Two windows at the start, where texts most often differ (ids, numbers), then quarters and end.
    for position in (starts, starts + np.minimum(spare, 8), starts + spare // 4, starts + spare // 2,
                     starts + 3 * spare // 4, starts + spare):
        key = (key ^ (windows[position] & keep)) * _MIX
        key ^= key >> np.uint64(31)
    return key
