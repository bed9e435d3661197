"""The entry point of every training run: lock, accelerator, the task's training, out-of-memory advice.

The job runner calls `train` (in its worker thread, or in the `accelerate launch` worker); the run's
task says how it trains (`Task.train`, a strategy of `backend.training.core`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from accelerate import Accelerator

from backend.config import TrainConfig
from backend.errors import Cancelled, UserError
from backend.settings import Settings
from backend.tasks.registry import get_task
from backend.training.core import ProgressFn, TrainResult
from backend.training.devices import (forget_registered, get_accelerator, is_out_of_memory,  # noqa: F401
                                     resolve_precision, training_lock)
from storage.records import DatasetRecord


def train(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, *, on_progress: ProgressFn,
          should_stop: Callable[[], bool], resume: bool = False, accelerator: Accelerator | None = None,
          settings: Settings | None = None) -> TrainResult:
    """Train `config` on `dataset` as its task does; the best model lands in `output_dir`.

    Raises Cancelled (after saving a checkpoint) once should_stop() is true, UserError on bad input
    or when the device runs out of memory. resume=True continues from the latest checkpoint.
    `settings` (the job runner's; None = the environment's) choose the accelerator unless one is
    given, and reach the task's setup (the image cache and loader workers read them).
    """
    task = get_task(config.task)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    while not training_lock.acquire(timeout=0.5):  # another run is training in this process
        if should_stop():
            raise Cancelled()
    try:
        settings = settings if settings is not None else Settings()
        if accelerator is None:
            accelerator = get_accelerator(settings.device, settings.mixed_precision)
        forget_registered(accelerator)  # what a previous run registered: save_state would save it too
        return task.train(config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                          settings=settings)
    except Exception as exc:
        if is_out_of_memory(exc):
            device = accelerator.device if accelerator is not None else "this device"
            raise UserError(f"Out of memory on {device}: lower batch_size (now {config.batch_size}) or "
                            f"{task.length_setting(config)}; raise gradient_accumulation_steps to keep the "
                            "effective batch size.") from exc
        raise
    finally:
        if accelerator is not None:
            forget_registered(accelerator)
        training_lock.release()
