"""Device and precision: one process-wide Accelerator, like Accelerate's own state.

Accelerate refuses a second Accelerator with another device or precision in one process, so the
choice belongs to Settings (not to a run), and every trainer asks `get_accelerator` for it.
"""

from __future__ import annotations

import logging
import threading

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from backend.errors import UserError
from backend.settings import Settings

log = logging.getLogger(__name__)

_accelerator: Accelerator | None = None
_accelerator_key: tuple[str, str] | None = None
_accelerator_lock = threading.Lock()
# Accelerate's GradientState (accumulation counters, sync flag) and the models/optimizers an
# Accelerator registers are process-wide: two runs stepping at once would skip each other's
# optimizer steps and save each other's weights. So runs in one process train one at a time.
training_lock = threading.Lock()


def resolve_device(device: str = "auto") -> str:
    """'cuda', 'mps' or 'cpu': what `device` means on this machine."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device not in ("cuda", "mps", "cpu") or (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise UserError(f"Device '{device}' is not available on this machine. "
                        "Set MODELSMITH_DEVICE to auto (or cpu) and restart.")
    return device


def resolve_precision(device: str, mixed_precision: str = "auto") -> str:
    """'bf16', 'fp16' or 'no': mixed precision on CUDA only, bf16 where the GPU supports it."""
    if device != "cuda":
        return "no"
    if mixed_precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return mixed_precision


def get_accelerator(device: str = "auto", mixed_precision: str = "auto") -> Accelerator:
    """The process-wide Accelerator for this device and precision, created on first use."""
    global _accelerator, _accelerator_key
    resolved = resolve_device(device)
    key = (resolved, resolve_precision(resolved, mixed_precision))
    with _accelerator_lock:
        if _accelerator is not None and _accelerator_key == key:
            return _accelerator
        if _accelerator is not None:
            # Accelerate refuses a second device/precision in one process unless its state is
            # reset; only do this between runs.
            log.warning("switching the accelerator from %s to %s", _accelerator_key, key)
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()
        _accelerator = Accelerator(cpu=key[0] == "cpu", mixed_precision=key[1])
        _accelerator_key = key
        log.info("accelerator ready: device=%s mixed_precision=%s", _accelerator.device, key[1])
        return _accelerator


def forget_registered(accelerator: Accelerator) -> None:
    """Forget the models, optimizers, schedulers and loaders a run registered (save_state saves them all).

    On a GPU this is Accelerate's free_memory(): those resets, a full gc.collect() and the device's
    cache emptied, so the next run finds the memory free. On a CPU there is no device cache, and the
    full collection alone took 0.4 s a call in a process with torch loaded (two calls a run: more
    than a small LSTM or a gbdt fit trains), so only the resets are done, as free_memory does them;
    Python's own collector frees what is left.
    """
    if accelerator.device.type != "cpu":
        accelerator.free_memory()
        return
    accelerator._models, accelerator._optimizers = [], []
    accelerator._schedulers, accelerator._dataloaders = [], []
    accelerator.step = 0


def default_device() -> torch.device:
    """The device of the process-wide Accelerator, or the one Settings would pick."""
    if _accelerator is not None:
        return _accelerator.device
    return torch.device(resolve_device(Settings().device))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is the device (or the host) running out of memory."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def device_description(settings: Settings) -> str:
    """Human name of the device training will use: 'CPU', or the GPU's name."""
    if settings.device in ("auto", "cuda") and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if settings.device in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    return "CPU"
