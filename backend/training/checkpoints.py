"""Resumable checkpoints and atomic model saves, shared by the classifier and language-model trainers.

A checkpoint is `output_dir/checkpoints/step-00000120/`: Accelerate's state (model weights as
safetensors, optimizer, scheduler, RNG states), the run's learned tokenizer, and the trainer's
own state as JSON, written last: its presence marks a complete checkpoint. Checkpoints are
written into a dot-named staging folder and renamed into place, so a crash never leaves a half
checkpoint that a resume could pick.

Inside `publishing_in_background` (the training core wraps every run in it), only the writing
happens on the training thread; making the files durable (fsync of each file), the rename and
the rotation of old checkpoints run on one background thread while the next steps train. A run
never ends, and a new checkpoint never starts, before the previous one is published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from backend.errors import UserError

if TYPE_CHECKING:  # annotations only: finding a checkpoint (the job runner) must not import torch
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STATE = "trainer_state.json"  # written last: its presence marks a complete checkpoint
CHECKPOINT_NAME = re.compile(r"step-(\d+)")
KEEP_CHECKPOINTS = 2
# Earlier names of LoopState fields: a run stopped before an upgrade still resumes after it.
LEGACY_STATE_NAMES = {"best_metric": "best_score", "best_loss": "best_score"}

State = TypeVar("State")


def latest_checkpoint(output_dir: Path) -> Path | None:
    """Newest complete checkpoint folder of a run, or None."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    complete = [p for p in root.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and (p / CHECKPOINT_STATE).is_file()]
    return max(complete, key=lambda p: int(CHECKPOINT_NAME.fullmatch(p.name).group(1)), default=None)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint folder (step-00000120) was saved at."""
    return int(CHECKPOINT_NAME.fullmatch(Path(checkpoint).name).group(1))


def begin_run(config_json: str, output_dir: Path, resume: bool) -> Path | None:
    """Write the run config; the checkpoint to resume from (None: start fresh, old checkpoints cleared)."""
    (output_dir / "run_config.json").write_text(config_json, encoding="utf-8")
    if not resume:  # a fresh start: checkpoints of an earlier attempt must never be picked as latest
        shutil.rmtree(output_dir / CHECKPOINTS_DIR, ignore_errors=True)
        return None
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is None:
        log.warning("no checkpoint in %s: starting from the beginning", output_dir)
    return checkpoint


class _Publisher:
    """One background thread that publishes a run's checkpoints, one at a time, in order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-publish")
        self._pending: Future | None = None

    def submit(self, publish_fn: Callable[[], None]) -> None:
        self.wait()
        self._pending = self._pool.submit(publish_fn)

    def wait(self) -> None:
        """Block until the checkpoint being published is on disk; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


_publishers: dict[Path, _Publisher] = {}  # by run folder: several runs may train at once (threads)
_publishers_lock = threading.Lock()


@contextlib.contextmanager
def publishing_in_background(output_dir: Path) -> Iterator[None]:
    """Within it, save_checkpoint for `output_dir` returns once the files are written; on exit
    (normal, Stop or error) every checkpoint is published before the caller goes on."""
    key, publisher = Path(output_dir).resolve(), _Publisher()
    with _publishers_lock:
        _publishers[key] = publisher
    try:
        yield
    finally:
        with _publishers_lock:
            _publishers.pop(key, None)
        publisher.close()


def wait_for_checkpoints(output_dir: Path) -> None:
    """Block until the checkpoint of `output_dir` being published (if any) is complete."""
    with _publishers_lock:
        publisher = _publishers.get(Path(output_dir).resolve())
    if publisher is not None:
        publisher.wait()


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: Any,
                    tokenizer: PreTrainedTokenizerBase | None) -> Path:
    """Save model, optimizer, scheduler and RNG state + `state` (a dataclass with global_step) atomically."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    final = root / f"step-{state.global_step:08d}"
    staging = root / f".tmp-{final.name}"  # dot-names are never picked as latest
    main = accelerator.is_main_process  # several ranks (accelerate launch): rank 0 alone touches the folders
    if main:
        wait_for_checkpoints(output_dir)  # the previous one is published (rotation and renames never overlap)
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    # Every rank calls save_state: rank 0 writes weights, optimizer and scheduler, each rank its own RNG state.
    accelerator.save_state(str(staging), safe_serialization=True)
    accelerator.wait_for_everyone()
    if main:
        if tokenizer is not None:  # a learned vocabulary must come back identical on resume
            tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        # Written now: training goes on and changes `state`; its presence marks the checkpoint complete
        # only once the rename publishes the folder.
        (staging / CHECKPOINT_STATE).write_text(json.dumps(asdict(state)), encoding="utf-8")
        with _publishers_lock:
            publisher = _publishers.get(Path(output_dir).resolve())
        if publisher is None:
            _publish_checkpoint(root, final, staging)
        else:
            publisher.submit(lambda: _publish_checkpoint(root, final, staging))
    accelerator.wait_for_everyone()  # no rank goes on before rank 0 has written the checkpoint
    return final


def _publish_checkpoint(root: Path, final: Path, staging: Path) -> None:
    sync_tree(staging)  # on disk before the rename publishes it: a power cut must not leave a hollow checkpoint
    if final.exists():  # the same step saved twice (epoch end, then stop): swap, never delete first
        old = root / f".old-{final.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)
    complete = sorted((p for p in root.iterdir() if CHECKPOINT_NAME.fullmatch(p.name)),
                      key=lambda p: int(CHECKPOINT_NAME.fullmatch(p.name).group(1)))
    for stale in complete[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(stale, ignore_errors=True)
    _sync_dir(root)  # the rename itself


def sync_tree(folder: Path) -> None:
    """fsync every file under `folder` and the folders themselves (rename is atomic, not durable)."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                try:
                    os.fsync(handle.fileno())
                except OSError:  # a platform that cannot fsync a read handle: best effort
                    log.debug("could not fsync %s", path, exc_info=True)
    for path in sorted((p for p in Path(folder).rglob("*") if p.is_dir()), reverse=True):
        _sync_dir(path)
    _sync_dir(Path(folder))


def _sync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are journaled anyway
        return
    try:
        os.fsync(descriptor)
    except OSError:
        log.debug("could not fsync %s", folder, exc_info=True)
    finally:
        os.close(descriptor)


def load_checkpoint(accelerator: Accelerator, checkpoint: Path, state_type: Callable[..., State]) -> State:
    """Restore Accelerate's state from `checkpoint` and return the trainer state saved with it."""
    # load_state uses torch.load (weights_only) on optimizer/scheduler/RNG files: only ever on
    # checkpoints a trainer wrote into the run's own folder.
    try:
        accelerator.load_state(str(checkpoint))
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"The checkpoint {checkpoint.name} does not fit this run's settings "
                        f"({str(exc).splitlines()[0][:200]}). Start a new run instead of resuming.") from exc
    saved = json.loads((checkpoint / CHECKPOINT_STATE).read_text(encoding="utf-8"))
    for old, new in LEGACY_STATE_NAMES.items():  # a checkpoint written before the loops shared their state
        if old in saved:
            saved.setdefault(new, saved.pop(old))
    state = state_type(**saved)
    log.info("resumed from %s (step %d)", checkpoint, state.global_step)
    return state


def publish(output_dir: Path, write: Callable[[Path], None]) -> None:
    """Let `write(folder)` save files into a staging folder, then move each into `output_dir`."""
    # Each rename is atomic, so a reader (the Playground) never sees a half-written model file.
    staging = Path(output_dir) / ".best-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    write(staging)
    sync_tree(staging)
    for path in sorted(staging.iterdir()):
        target = Path(output_dir) / path.name
        if path.is_dir():  # save_pretrained may write sub-folders; replace them whole
            shutil.rmtree(target, ignore_errors=True)
        os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)
