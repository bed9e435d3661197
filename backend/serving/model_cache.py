"""The predictor and generator caches: a few loaded models, keyed on a run folder and the age of its weights.

Each keeps a few loaded models in memory (functools.lru_cache); the weights' mtime is part of the
key, so a re-saved best model is loaded afresh instead of served stale.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from backend.errors import UserError

CACHE_SIZE = 4  # finished models kept in memory at once, per cache
Loaded = TypeVar("Loaded")


class RunFolderCache(Generic[Loaded]):
    """Models made by `load(folder, device)`, kept per run folder, weights' age and device."""

    def __init__(self, load: Callable[[Path, str], Loaded]) -> None:
        self._load = load
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._load_keyed)
        self._lock = threading.Lock()

    def _load_keyed(self, folder: str, mtime_ns: int, device: str) -> Loaded:
        # mtime_ns is part of the key only: a re-saved best model gets a fresh entry.
        return self._load(Path(folder), device)

    def get(self, output_dir: Path | str, device: str | None = None) -> Loaded:
        """The loaded model of a run folder; UserError when the run saved none."""
        folder, mtime_ns = cache_key(output_dir)
        with self._lock:  # two threads asking for one new model load it once
            return self._cached(folder, mtime_ns, device or default_device_name())

    def clear(self) -> None:
        """Forget every cached model (frees their memory)."""
        self._cached.cache_clear()


def cache_key(output_dir: Path | str) -> tuple[str, int]:
    """(resolved folder, mtime of its model.safetensors); UserError when the run saved no model."""
    folder = Path(output_dir).expanduser().resolve()
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"No trained model in {folder}: the run has not saved one yet. "
                        "Pick a run that finished, or wait for this one to evaluate once.")
    return str(folder), weights.stat().st_mtime_ns


def default_device_name() -> str:
    """The device training uses in this process (models are served where they were trained)."""
    from backend.training.devices import default_device

    return str(default_device())
