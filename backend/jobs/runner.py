"""JobRunner: a FIFO queue persisted in the DB, supervisor threads, stop, heartbeat, recovery.

Each supervisor thread claims the oldest queued run and trains it:
- launcher=process (the app's default): in its own process group, started by Accelerate's
  launcher (`accelerate launch ... -m backend.jobs.worker --run-id N`, see backend.jobs.launch),
  on a GPU set from the pool; the worker writes progress and the final status itself, the
  supervisor waits for every process of the run to end, forwards progress to listeners, turns
  Stop into SIGTERM (SIGKILL after `stop_grace_s`) and records a run whose worker died as
  `interrupted`.
- launcher=thread: in the supervisor thread itself. The trainer knows nothing of the DB: the
  runner hands it callbacks that append progress to the metrics table and beat the heartbeat.
Either way a run outlives the browser tab that launched it, and stopping is our own
threading.Event, checked between optimizer steps (in a worker: a signal that sets it).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from backend.config import RESUMABLE_STATUSES, TrainConfig
from backend.errors import Cancelled, UserError
from backend.jobs import liveness
from backend.jobs.launch import PROJECT_ROOT, GpuPool, concurrent_runs, plan_launch, visible_gpus
from backend.jobs.processes import (any_alive, describe_exit, descendants, is_alive, signal_group, signal_processes,
                                    start_time, this_host)
from backend.settings import Settings
from storage.records import DatasetRecord, RunRecord
from storage.repository import Repository

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0
IDLE_POLL_S = 1.0
STALE_SWEEP_S = 30.0  # how often a serving app looks for runs whose process died (heartbeat stale)
READ_SWEEP_S = 1.0  # readers (UI polling, `runs`) sweep at most this often: a dead worker shows within seconds
SUPERVISE_POLL_S = 0.25  # how often a supervisor looks at its worker's processes


class TrainFn(Protocol):
    def __call__(self, config: TrainConfig, dataset: DatasetRecord, output_dir: Path, *,
                 on_progress: Callable[[int, dict[str, float]], None], should_stop: Callable[[], bool],
                 resume: bool = False): ...


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


class JobRunner:
    """Runs queued training jobs from supervisor threads, at most `concurrent_runs(settings)` at once."""

    def __init__(self, repo: Repository, settings: Settings, train_fn: TrainFn | None = None) -> None:
        self._repo = repo
        self._settings = settings
        self._train_fn = train_fn
        self._stops: dict[int, threading.Event] = {}
        self._claim_lock = threading.Lock()  # two workers must never claim the same queued run
        self._wake = threading.Event()
        self._shutdown = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[int, int, dict[str, float]], None]] = []
        self._next_sweep = 0.0
        self._next_read_sweep = 0.0
        self._gpu_pool: GpuPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def uses_processes(self) -> bool:
        """Whether runs train in `accelerate launch` worker processes (else in this process's threads)."""
        return self._train_fn is None and self._settings.launcher == "process"

    def _pool(self) -> GpuPool:
        with self._pool_lock:
            if self._gpu_pool is None:
                self._gpu_pool = GpuPool(visible_gpus(self._settings), self._settings.gpus_per_run)
            return self._gpu_pool

    def launch_command(self, run_id: int | str = "<run id>") -> str:
        """The exact `accelerate launch` command the next run would be started with (the Train tab shows it)."""
        gpus = visible_gpus(self._settings)
        per_run = (self._settings.gpus_per_run or len(gpus)) if gpus else 0
        return plan_launch(self._settings, run_id, gpus[:per_run], port=0).command_line().replace(
            "--main_process_port 0", "--main_process_port <free port>")

    # ---- lifecycle -------------------------------------------------------------------------
    def recover(self, *, all_running: bool = True) -> list[int]:
        """Mark runs left `running` by a dead process as `interrupted`; queued runs stay queued.

        The app owns the DB, so at its start every `running` row is an orphan. A one-off CLI
        process may share the DB with a live app, so it only takes runs whose heartbeat is stale.
        """
        return liveness.sweep(self._repo, self._settings.heartbeat_timeout_s, unowned_are_orphans=all_running)

    def sweep_for_readers(self) -> list[int]:
        """Before a read: runs whose training process is gone become `interrupted` (at most once a second)."""
        now = time.monotonic()
        if now < self._next_read_sweep:
            return []
        self._next_read_sweep = now + READ_SWEEP_S
        try:
            return liveness.sweep(self._repo, self._settings.heartbeat_timeout_s)
        except Exception:  # a reader must still read when the sweep cannot write (e.g. a read-only replica)
            log.debug("liveness sweep failed", exc_info=True)
            return []

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        if self._threads:
            return
        count = concurrent_runs(self._settings, visible_gpus(self._settings)) if self.uses_processes else 1
        for index in range(count):
            thread = threading.Thread(target=self._worker, name=f"modelsmith-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop workers; running jobs save a checkpoint and end `interrupted` (e.g. on SIGTERM)."""
        with self._claim_lock:  # no worker claims a run after this, so every running job sees its stop
            self._shutdown.set()
            for event in list(self._stops.values()):
                event.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def add_listener(self, listener: Callable[[int, int, dict[str, float]], None]) -> None:
        """Also call `listener(run_id, step, values)` on every progress report (the CLI prints them)."""
        self._listeners.append(listener)

    # ---- public actions ---------------------------------------------------------------------
    def submit(self, config: TrainConfig) -> int:
        """Validate the dataset reference, queue a run and wake a worker; returns the run id."""
        if config.dataset_id is None:  # e.g. the config of an imported model
            raise UserError("Pick a dataset to train on: this configuration has none.")
        dataset = self._repo.get_dataset(config.dataset_id)
        if dataset.task != config.task:
            raise UserError(f"Dataset {dataset.id} was prepared for {dataset.task}, not {config.task}. "
                            "Pick a dataset uploaded for this task, or upload it again with that task.")
        run_id = self._repo.create_run(config)
        self._wake.set()
        return run_id

    def stop(self, run_id: int) -> str:
        """Cancel a queued run at once, or ask a running one to stop after its current step."""
        run = self._repo.get_run(run_id)
        if run.status == "queued":
            with self._claim_lock:
                if self._repo.cancel_queued(run_id):  # one UPDATE: a claim by another process wins or loses whole
                    return "cancelled"
        event = self._stops.get(run_id)
        if event is not None:
            event.set()
            return "stopping"
        run = self._repo.get_run(run_id)
        if run.status == "running" and run.worker_port and run.worker_pid and run.worker_host == this_host() and \
                run.worker_pid != os.getpid() and is_alive(run.worker_pid, run.worker_started):
            # Supervised by another process here (a `python app.py train` in a terminal): its worker
            # checkpoints on SIGTERM and records `cancelled` itself.
            tree = [(run.worker_pid, run.worker_started), *descendants(run.worker_pid)]
            signal_group(run.worker_pid, signal.SIGTERM)
            signal_processes(tree, signal.SIGTERM)
            return "stopping"
        raise UserError(f"Run {run_id} is {run.status}; only queued or running runs can be stopped.")

    def resume(self, run_id: int) -> int:
        """Queue an interrupted or cancelled run again; it continues from its last checkpoint."""
        run = self._repo.get_run(run_id)
        if run.status not in RESUMABLE_STATUSES:
            raise UserError(f"Run {run_id} is {run.status}; only interrupted or cancelled runs can be resumed.")
        self._repo.requeue(run_id)
        self._wake.set()
        return run_id

    def delete(self, run_id: int) -> None:
        """Delete a finished or queued run: its folder, metrics and rows. Refused while it trains."""
        run = self._repo.get_run(run_id)
        if run.status == "running" or run_id in self._stops:
            raise UserError(f"Run {run_id} is training. Stop it first, then delete it.")
        if run.status == "queued":
            self.stop(run_id)
        self._repo.delete_run(run_id)
        if run.output_dir and Path(run.output_dir).resolve().parent == self._settings.runs_dir.resolve():
            shutil.rmtree(run.output_dir, ignore_errors=True)  # only ever our own runs/<id> folders

    def queue_length(self) -> int:
        """Runs waiting for a worker."""
        return self._repo.count_queued()

    def is_active(self, run_id: int) -> bool:
        """Whether this process is training the run right now."""
        return run_id in self._stops

    def wait(self, run_id: int, timeout: float = 600.0, poll: float = 0.2) -> RunRecord:
        """Block until the run reaches a final status (for the CLI and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self._repo.get_run(run_id)
            if run.status not in ("queued", "running"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout:.0f}s")
            time.sleep(poll)

    # ---- the work ---------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self._shutdown.is_set():
            try:
                self._sweep_stale()
                run = self._claim_next()
                if run is None:
                    self._wake.wait(IDLE_POLL_S)
                    self._wake.clear()
                    continue
                self.run_job(run.id, claimed=True)
            except Exception:  # e.g. the DB failed to record a result: keep serving the queue
                log.exception("job worker error; carrying on with the queue")
                self._shutdown.wait(IDLE_POLL_S)

    def _sweep_stale(self) -> None:
        # A run that another process (the CLI) was training and whose heartbeat stopped is dead:
        # show it as interrupted now, not only after the app restarts.
        with self._claim_lock:
            now = time.monotonic()
            if now < self._next_sweep:
                return
            self._next_sweep = now + STALE_SWEEP_S
        self.recover(all_running=False)

    def _claim_next(self) -> RunRecord | None:
        with self._claim_lock:
            queued = [] if self._shutdown.is_set() else self._repo.queued_runs()
            for run in queued:  # oldest first; another process sharing the database may take one first
                if self._mark_running(run.id):
                    return run
            return None

    def _mark_running(self, run_id: int) -> bool:
        # The folder first: a crash right after must never leave a row pointing at a missing folder.
        output_dir = self._settings.runs_dir / str(run_id)
        output_dir.mkdir(parents=True, exist_ok=True)
        # This process owns the run from the claim on (its worker's pid replaces it once launched).
        if not self._repo.claim(run_id, str(output_dir), pid=os.getpid(), started=start_time(os.getpid()),
                                host=this_host(), gpus="", port=None):
            return False
        self._stops[run_id] = threading.Event()
        return True

    def run_job(self, run_id: int, *, claimed: bool = False) -> RunRecord:
        """Train one run to its end in the calling thread; a worker thread never dies of a job."""
        if not claimed:
            with self._claim_lock:
                run = self._repo.get_run(run_id)
                if run.status != "queued" or not self._mark_running(run_id):
                    run = self._repo.get_run(run_id)
                    raise UserError(f"Run {run_id} is {run.status}, not queued.")
        stop = self._stops[run_id]
        if self.uses_processes:
            try:
                self._execute_in_worker(run_id, stop)
            finally:
                self._stops.pop(run_id, None)
            return self._repo.get_run(run_id)
        beating = threading.Event()
        beater = threading.Thread(target=self._beat, args=(run_id, beating), daemon=True)
        beater.start()
        try:
            self._execute(run_id, stop)
        finally:
            beating.set()
            self._stops.pop(run_id, None)
        return self._repo.get_run(run_id)

    def _execute(self, run_id: int, stop: threading.Event) -> None:
        run = self._repo.get_run(run_id)
        output_dir = Path(run.output_dir or self._settings.runs_dir / str(run_id))
        try:
            config = run.config
            dataset = self._repo.get_dataset(config.dataset_id)
            output_dir.mkdir(parents=True, exist_ok=True)
            resume = has_checkpoint(output_dir)
            self._rewind_metrics(run_id, output_dir, resume)
            result = self._train(config, dataset, output_dir, run_id, stop, resume)
        except Cancelled:
            status = "interrupted" if self._shutdown.is_set() else "cancelled"
            self._repo.finish(run_id, status)
            self._log_line(output_dir, f"run {status}; last checkpoint kept for resume")
        except Exception as exc:  # a worker thread must never die silently
            log.exception("run %d failed", run_id)
            message = explain(exc)
            self._repo.finish(run_id, "failed", error=message)
            self._log_line(output_dir, f"FAILED: {message}")
        except BaseException:  # Ctrl-C or exit while the CLI trains in this thread: say so now, not after
            # the heartbeat goes stale; the run resumes from its last completed checkpoint.
            self._repo.finish(run_id, "interrupted", error="Training was interrupted (Ctrl-C or the process was "
                                                           "stopped). Resume it to continue from its last checkpoint.")
            self._log_line(output_dir, "run interrupted by the process stopping")
            raise
        else:
            self._repo.finish(run_id, "succeeded", metrics=result.metrics)
            self._repo.add_artifact(run_id, "model", str(output_dir))
            self._log_line(output_dir, "run succeeded")

    # ---- worker processes ---------------------------------------------------------------
    def _execute_in_worker(self, run_id: int, stop: threading.Event) -> None:
        """Launch the run's worker processes, supervise them to their end, record what the worker could not."""
        run = self._repo.get_run(run_id)
        output_dir = Path(run.output_dir or self._settings.runs_dir / str(run_id))
        gpus: tuple[str, ...] | None = None
        try:
            config = run.config
            dataset = self._repo.get_dataset(config.dataset_id)
            resume = has_checkpoint(output_dir)
            self._rewind_metrics(run_id, output_dir, resume)
            gpus = self._wait_for_gpus(stop)
            if gpus is None:  # stopped while waiting for a GPU: nothing trained, nothing to save
                raise Cancelled()
            plan = plan_launch(self._settings, run_id, gpus)
            log_line(output_dir, f"{'resuming' if resume else 'starting'} {config.template.kind} on dataset "
                                 f"{dataset.id} ({dataset.train_rows} training rows): {plan.command_line()}")
            process = self._launch(run_id, plan, output_dir)
            self._supervise(run_id, process, stop, output_dir)
        except Cancelled:
            status = "interrupted" if self._shutdown.is_set() else "cancelled"
            self._repo.finish(run_id, status)
            log_line(output_dir, f"run {status} before its worker started")
        except Exception as exc:  # a supervisor thread must never die silently
            log.exception("run %d could not be launched", run_id)
            message = explain(exc)
            self._repo.finish(run_id, "failed", error=message)
            log_line(output_dir, f"FAILED: {message}")
        finally:
            if gpus:
                self._pool().give_back(gpus)

    def _wait_for_gpus(self, stop: threading.Event) -> tuple[str, ...] | None:
        while not stop.is_set():
            gpus = self._pool().take()
            if gpus is not None:
                return gpus
            stop.wait(IDLE_POLL_S)
        return None

    def _launch(self, run_id: int, plan, output_dir: Path) -> subprocess.Popen:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / "train.log", "ab") as out:  # the launcher and every rank write here
            process = subprocess.Popen(plan.argv, env={**os.environ, **plan.env}, cwd=str(PROJECT_ROOT),
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # its own process group: one signal reaches all
        self._repo.set_worker(run_id, pid=process.pid, started=start_time(process.pid), host=this_host(),
                              gpus=",".join(plan.gpus), port=plan.port)
        log.info("run %d: worker started (pid %d): %s", run_id, process.pid, plan.command_line())
        return process

    def _supervise(self, run_id: int, process: subprocess.Popen, stop: threading.Event, output_dir: Path) -> None:
        """Wait until every process of the run has ended; Stop -> SIGTERM, then SIGKILL after the grace period."""
        tree = {(process.pid, start_time(process.pid))}
        signalled_at: float | None = None
        seen_step = self._last_step(run_id)
        try:
            while True:
                tree |= set(descendants(process.pid))  # torchrun's ranks run in sessions of their own
                if stop.is_set() and signalled_at is None:
                    # SIGTERM = Stop (-> cancelled); SIGINT = the app is shutting down (-> interrupted)
                    sig = signal.SIGINT if self._shutdown.is_set() else signal.SIGTERM
                    signal_group(process.pid, sig)
                    signal_processes(tree, sig)
                    signalled_at = time.monotonic()
                elif signalled_at is not None and time.monotonic() - signalled_at > self._settings.stop_grace_s:
                    log.warning("run %d did not stop within %.0f s: killing its processes", run_id,
                                self._settings.stop_grace_s)
                    signal_group(process.pid, signal.SIGKILL)
                    signal_processes(tree, signal.SIGKILL)
                seen_step = self._forward_progress(run_id, seen_step)
                if process.poll() is not None and not any_alive(tree):
                    break
                time.sleep(SUPERVISE_POLL_S)
        except BaseException:  # Ctrl-C in the CLI that supervises: the run checkpoints and ends interrupted
            signal_group(process.pid, signal.SIGINT)
            signal_processes(tree, signal.SIGINT)
            self._await_end(process, tree)  # a resume must never start while the old worker still saves
            self._repo.mark_interrupted(run_id, "Training was interrupted (Ctrl-C or the process was stopped). "
                                                "Resume it to continue from its last checkpoint.")
            raise
        self._forward_progress(run_id, seen_step)
        self._record_end(run_id, process.returncode, stopped=signalled_at is not None, output_dir=output_dir)

    def _await_end(self, process: subprocess.Popen, tree: set) -> None:
        """Give the run's processes the grace period to checkpoint and exit, then kill what is left."""
        deadline = time.monotonic() + self._settings.stop_grace_s
        while time.monotonic() < deadline and (process.poll() is None or any_alive(tree)):
            time.sleep(SUPERVISE_POLL_S)
        if process.poll() is None or any_alive(tree):
            signal_group(process.pid, signal.SIGKILL)
            signal_processes(tree, signal.SIGKILL)
            process.wait()

    def _record_end(self, run_id: int, returncode: int | None, *, stopped: bool, output_dir: Path) -> None:
        """The worker records how the run ended; when it could not (killed, crashed), say so here."""
        if self._repo.get_run(run_id).status != "running":
            return
        if stopped and not self._shutdown.is_set():
            self._repo.finish(run_id, "cancelled", error=f"Stopped; its processes had to be killed "
                                                         f"({describe_exit(returncode)}). Resume continues from "
                                                         "its last complete checkpoint.")
            log_line(output_dir, "run cancelled (processes killed after the grace period)")
            return
        hint = " (the kernel kills the largest process when memory runs out)" if returncode == -signal.SIGKILL else ""
        message = (f"The training process ended without finishing the run ({describe_exit(returncode)}){hint}. "
                   "Resume it to continue from its last checkpoint.")
        if self._repo.mark_interrupted(run_id, message):
            log_line(output_dir, f"run interrupted: {message}")

    def _last_step(self, run_id: int) -> int:
        metrics = self._repo.get_metrics(run_id, ["progress"]) if self._listeners else []
        return max((m.step for m in metrics), default=0)

    def _forward_progress(self, run_id: int, seen_step: int) -> int:
        """Hand the steps the worker stored since `seen_step` to the listeners (the CLI prints them)."""
        if not self._listeners:
            return seen_step
        by_step: dict[int, dict[str, float]] = {}
        for metric in self._repo.get_metrics(run_id):
            if metric.step > seen_step:
                by_step.setdefault(metric.step, {})[metric.key] = metric.value
        for step in sorted(by_step):
            for listener in self._listeners:
                listener(run_id, step, by_step[step])
        return max(by_step, default=seen_step)

    def _rewind_metrics(self, run_id: int, output_dir: Path, resume: bool) -> None:
        """Forget the metric rows the coming attempt will write again: those past the checkpoint it
        resumes from (all of them when it starts afresh), so each (step, key) is stored once."""
        step = 0
        if resume:
            from backend.training.checkpoints import checkpoint_step, latest_checkpoint  # torch only when a job runs

            checkpoint = latest_checkpoint(output_dir)
            step = checkpoint_step(checkpoint) if checkpoint is not None else 0
        dropped = self._repo.delete_metrics_after(run_id, step)
        if dropped:
            log.info("run %d: %d metric rows past step %d dropped before training", run_id, dropped, step)

    def _train(self, config, dataset, output_dir, run_id, stop, resume):
        train_fn = self._train_fn
        if train_fn is None:
            from backend.training.run import train  # torch is imported only when a job runs

            train_fn = partial(train, settings=self._settings)  # this runner's device and precision
        self._log_line(output_dir, f"{'resuming' if resume else 'starting'} {config.template.kind} "
                                   f"on dataset {dataset.id} ({dataset.train_rows} training rows)")
        return train_fn(config, dataset, output_dir, on_progress=lambda step, values: self._record(
            run_id, output_dir, step, values), should_stop=stop.is_set, resume=resume)

    def _record(self, run_id: int, output_dir: Path, step: int, values: dict[str, float]) -> None:
        clean = record_progress(self._repo, run_id, output_dir, step, values)
        for listener in self._listeners:
            listener(run_id, step, clean)

    def _beat(self, run_id: int, done: threading.Event) -> None:
        # Evaluation or a checkpoint save can outlast log steps: beat on a clock too.
        while not done.wait(HEARTBEAT_EVERY_S):
            try:
                self._repo.heartbeat(run_id)
            except Exception:  # a missed beat is harmless; never kill the job for it
                log.debug("heartbeat failed for run %d", run_id, exc_info=True)

    @staticmethod
    def _log_line(output_dir: Path, line: str) -> None:
        log_line(output_dir, line)


def read_log_tail(output_dir: str | None, lines: int = 30) -> str:
    """Last lines of a run's train.log ('' when there is none)."""
    if not output_dir:
        return ""
    path = Path(output_dir) / "train.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
