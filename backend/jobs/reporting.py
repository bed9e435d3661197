"""What every run writes as it goes, in a thread or in a worker process: progress rows and
heartbeat, lines in its train.log, a readable reason when it fails."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from backend.errors import UserError
from storage.repository import Repository

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0


def explain(exc: BaseException) -> str:
    """A readable one-paragraph message for a failed run: what went wrong and, where known, the fix."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc) or type(exc).__name__
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return ("Out of memory while training. Lower the batch size or the max length "
                "(or use gradient accumulation to keep the effective batch size).")
    if isinstance(exc, FileNotFoundError):
        return f"A file the run needs is missing: {exc.filename or text}. Re-upload the dataset and start a new run."
    first_line = text.strip().splitlines()[0][:500]
    return f"Training failed ({type(exc).__name__}): {first_line}"


def has_checkpoint(output_dir: Path) -> bool:
    """Whether a run folder holds a complete checkpoint to resume from."""
    folder = output_dir / "checkpoints"
    return folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())


def log_line(output_dir: Path, line: str) -> None:
    """Append a timestamped line to the run's train.log (never fails the run)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / "train.log", "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    except OSError:
        log.debug("could not write the log line for %s", output_dir, exc_info=True)


def record_progress(repo: Repository, run_id: int, output_dir: Path, step: int, values: dict) -> dict[str, float]:
    """Store one progress report: metric rows, heartbeat (+ progress), a log line; returns the numbers stored."""
    clean = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
    repo.add_metrics(run_id, step, clean)
    repo.heartbeat(run_id, progress=clean.get("progress"))
    log_line(output_dir, f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in clean.items()))
    return clean


def rewind_metrics(repo: Repository, run_id: int, output_dir: Path, resume: bool) -> None:
    """Forget the metric rows the coming attempt will write again: those past the checkpoint it
    resumes from (all of them when it starts afresh), so each (step, key) is stored once."""
    step = 0
    if resume:
        from backend.training.checkpoints import checkpoint_step, latest_checkpoint  # torch only when a job runs

        checkpoint = latest_checkpoint(output_dir)
        step = checkpoint_step(checkpoint) if checkpoint is not None else 0
    dropped = repo.delete_metrics_after(run_id, step)
    if dropped:
        log.info("run %d: %d metric rows past step %d dropped before training", run_id, dropped, step)


def read_log_tail(output_dir: str | None, lines: int = 30) -> str:
    """Last lines of a run's train.log ('' when there is none)."""
    if not output_dir:
        return ""
    path = Path(output_dir) / "train.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
