"""Import the heavy model stack (torch, transformers, the model code) once, off the start-up path.

`python app.py` answers its first page before torch and transformers are loaded: they take most
of the start-up time and the page needs neither. One thread imports them (`load_model_stack`);
every other caller of the same function waits for it, so no two threads import transformers at
once (a thread that reads a half-imported transformers module fails).
"""

from __future__ import annotations

import importlib
import logging
import threading

from backend.settings import Settings

log = logging.getLogger(__name__)

# The text tasks' predictor and generator modules come with the trainers that build them in memory;
# other tasks' predictors import on first use (Task.load_predictor), after torch and transformers.
MODEL_MODULES = ("torch", "transformers", "backend.serving.batch",
                 "backend.training.epochs", "backend.training.windows", "backend.training.estimate")
_lock = threading.Lock()
_loaded = False
_device: str | None = None


def load_model_stack() -> None:
    """Import the model modules once; a caller that comes while another thread imports them waits."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for name in MODEL_MODULES:
                importlib.import_module(name)
            _loaded = True


def detect_device(settings: Settings) -> str:
    """Load the model stack and return the training device's name."""
    load_model_stack()
    device = device_if_loaded(settings)
    log.info("model stack loaded; training device: %s", device)
    return device


def device_if_loaded(settings: Settings) -> str | None:
    """The training device's name once the model stack is loaded (by any caller), else None."""
    global _device
    if not _loaded:
        return None
    if _device is None:
        from backend.training.devices import device_description

        _device = device_description(settings)
    return _device


def start_in_background(settings: Settings, then=None) -> threading.Thread:
    """Load the model stack in a daemon thread, then call `then()` (start the job workers)."""

    def work() -> None:
        try:
            detect_device(settings)
        except Exception:  # the app still serves; the first model use reports the import error
            log.exception("loading torch/transformers failed")
        if then is not None:
            then()

    thread = threading.Thread(target=work, name="modelsmith-model-stack", daemon=True)
    thread.start()
    return thread
