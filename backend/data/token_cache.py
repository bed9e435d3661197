"""Token ids of a dataset split (and learned vocabularies), kept on disk so a second run (or a
resume) skips tokenizing.

Where: `<dataset folder>/token-cache/<key>.safetensors`, beside the split's Parquet files, so
deleting the dataset (which removes its folder) deletes its cache too, and a dataset stored
twice under one content hash shares it. Deleting the `token-cache` folders is always safe: the
next run tokenizes again and writes a new entry.

The key is a SHA-256 over everything that decides the ids: the dataset's content hash, the
split and its row count, the tokenizer's fingerprint (its full serialized state, see
`tokenizer_fingerprint`), and the caller's encoding options (max length, the encoding code's
own source). An entry is a safetensors file (no pickle) of plain integer arrays, with a
SHA-256 of its arrays in the header; it is written to a temporary file and renamed, so a crash
never leaves half an entry. An entry that fails to read or to match its checksum is logged,
removed and rebuilt: the cache can make a run faster, never make it fail.

Each dataset keeps at most MAX_ENTRIES entries and MAX_BYTES bytes; the least recently used
go first (a hit touches its file).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import marshal
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from storage.records import DatasetRecord

log = logging.getLogger(__name__)

CACHE_FOLDER = "token-cache"
SUFFIX = ".safetensors"
FORMAT_VERSION = 1  # bump when what an entry holds changes shape
MAX_ENTRIES = 16  # per dataset: a few tokenizers x lengths x 2 splits, and learned vocabularies
MAX_BYTES = 2 << 30  # per dataset; one entry bigger than this is still kept (it was just built)
CHECKSUM_KEY = "sha256"

Arrays = dict[str, np.ndarray]


def cache_folder(dataset: DatasetRecord) -> Path:
    """The folder that holds `dataset`'s cached token ids (it may not exist yet)."""
    return Path(dataset.path) / CACHE_FOLDER


def tokenizer_fingerprint(tokenizer) -> str | None:
    """SHA-256 of a fast tokenizer's serialized state (vocabulary, merges, normalizer, templates...).

    The truncation and padding a Hugging Face call sets on the backend are left out: they change
    with every call, and the callers put the length they encode with into the key themselves.
    None for a tokenizer without a `tokenizers` backend: nothing exact to hash, so no caching.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    state = backend.to_str()
    # The state starts {"version", "truncation", "padding", "added_tokens", ...} (the order of the
    # fields of tokenizers' serializer): hashing from "added_tokens" leaves the two out without
    # re-serializing a 30,000-entry vocabulary (json.dumps took 0.2-0.7 s of a warm set-up). A bare
    # `"added_tokens":` cannot occur inside a JSON string (its quotes would be escaped). Should the
    # order ever change, the whole state is hashed: more misses, never a wrong hit.
    start = state.find('"added_tokens":')
    digest = hashlib.sha256(state[start:].encode("utf-8") if start > 0 else state.encode("utf-8"))
    wrapper = {"special_ids": sorted(int(i) for i in getattr(tokenizer, "all_special_ids", []) or []),
               "truncation_side": getattr(tokenizer, "truncation_side", None),
               "unk_token_id": getattr(tokenizer, "unk_token_id", None),
               "pad_token_id": getattr(tokenizer, "pad_token_id", None)}
    digest.update(json.dumps(wrapper, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def source_fingerprint(code: ModuleType | Callable) -> str:
    """SHA-256 of a module's or function's source: changed encoding code never reads ids the old code made."""
    try:
        text = inspect.getsource(code).encode("utf-8")
    except (OSError, TypeError):  # installed without sources (bytecode only): hash the bytecode
        text = marshal.dumps(code.__code__) if hasattr(code, "__code__") else Path(code.__file__).read_bytes()
    return hashlib.sha256(text).hexdigest()


def encoding_version(code: ModuleType | Callable, reading: ModuleType | Callable) -> dict[str, str]:
    """What decides cached ids besides the tokenizer and the length: the source of the code that
    encodes (`code`) and reads (`reading`) the texts, and the tokenizers/transformers versions."""
    import tokenizers
    import transformers

    return {"code": source_fingerprint(code), "reading": source_fingerprint(reading),
            "tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def entry_key(dataset: DatasetRecord, split: str, options: Mapping) -> str:
    """The cache key of one split encoded with `options` (tokenizer fingerprint, lengths, ...)."""
    rows = dataset.train_rows if split == "train" else dataset.validation_rows
    parts = {"version": FORMAT_VERSION, "content_hash": dataset.content_hash, "split": split, "rows": rows,
             "options": dict(options)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def cached_arrays(dataset: DatasetRecord, split: str, options: Mapping | None,
                  build: Callable[[], Arrays]) -> Arrays:
    """The arrays `build()` makes for this split and options: read from the cache, or built and stored.

    `options` None (e.g. no tokenizer fingerprint) means: do not cache, just build.
    """
    if options is None:
        return build()
    path = cache_folder(dataset) / (entry_key(dataset, split, options) + SUFFIX)
    arrays = read_entry(path)
    if arrays is not None:
        log.info("token ids of the %s split of dataset '%s' read from the cache (%s)", split, dataset.name,
                 path.name[:12])
        return arrays
    arrays = build()
    write_entry(path, arrays)
    return arrays


def read_entry(path: Path) -> Arrays | None:
    """A cache entry's arrays, or None when it is missing or unreadable (then it is removed)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as entry:
            expected = (entry.metadata() or {}).get(CHECKSUM_KEY)
            arrays = {name: entry.get_tensor(name) for name in entry.keys()}
        if expected is None or _checksum(arrays) != expected:
            raise ValueError("checksum mismatch")
    except Exception as exc:  # any damage at all: rebuild, never fail the run
        log.warning("ignoring the damaged token cache entry %s (%s); tokenizing again", path, exc)
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return arrays


def write_entry(path: Path, arrays: Arrays) -> None:
    """Store `arrays` at `path` atomically (temp file + rename), then prune the folder; failures only log."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=path.parent)
        os.close(handle)
        contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        save_file(contiguous, temporary, metadata={CHECKSUM_KEY: _checksum(contiguous)})
        os.replace(temporary, path)
        temporary = None
        prune(path.parent, keep=path)
    except OSError as exc:  # a full or read-only disk: the run goes on without the cache
        log.warning("could not write the token cache entry %s (%s)", path, exc)
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def prune(folder: Path, keep: Path | None = None) -> None:
    """Remove the least recently used entries past MAX_ENTRIES or MAX_BYTES (never `keep`)."""
    entries = []
    for path in folder.glob("*" + SUFFIX):
        if path.name.startswith(".tmp-"):
            continue  # another process is writing it
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    entries.sort(key=lambda entry: entry[0], reverse=True)  # newest first
    kept_count, kept_bytes = 0, 0
    for _, size, path in entries:
        if path == keep or (kept_count < MAX_ENTRIES and kept_bytes + size <= MAX_BYTES):
            kept_count, kept_bytes = kept_count + 1, kept_bytes + size
            continue
        path.unlink(missing_ok=True)
        log.info("removed the token cache entry %s (least recently used)", path.name)


def _checksum(arrays: Arrays) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
