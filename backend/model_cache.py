"""What the predictor and generator caches key on: a run folder and the age of its weights.

Both keep a few loaded models in memory (functools.lru_cache); the weights' mtime is part of the
key, so a re-saved best model is loaded afresh instead of served stale.
"""

from __future__ import annotations

from pathlib import Path

from backend.errors import UserError


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
    from backend.devices import default_device

    return str(default_device())
