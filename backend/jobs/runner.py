"""JobRunner: a FIFO queue persisted in the DB, supervisor threads, stop, heartbeat, recovery.

Each supervisor thread claims the oldest queued run and trains it:
- launcher=process (the app's default): in its own process group, started by Accelerate's
  launcher (`accelerate launch ... -m backend.jobs.worker --run-id N`) on a GPU set from the
  pool, watched by backend.jobs.supervisor.
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
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from backend.config import RESUMABLE_STATUSES, TrainConfig
from backend.errors import Cancelled, UserError
from backend.jobs import liveness
from backend.jobs.join import join_command
from backend.jobs.launch import GpuPool, concurrent_runs, parse_gpu_request, plan_launch, visible_gpus
from backend.jobs.processes import descendants, is_alive, signal_group, signal_processes, start_time, this_host
from backend.jobs.reporting import (HEARTBEAT_EVERY_S, explain, has_checkpoint, log_line,  # noqa: F401 (explain:
                                    record_progress, rewind_metrics)                 # re-exported for callers)
from backend.jobs.supervisor import IDLE_POLL_S, WorkerSupervisor
from backend.settings import Settings
from storage.records import DatasetRecord, RunRecord
from storage.repository import Repository

log = logging.getLogger(__name__)

STALE_SWEEP_S = 30.0  # how often a serving app looks for runs whose process died (heartbeat stale)
RESUME_WAIT_S = 10.0  # how long Resume waits for a run's last processes to exit after its final status
READ_SWEEP_S = 1.0  # readers (UI polling, `runs`) sweep at most this often: a dead worker shows within seconds


class TrainFn(Protocol):
    def __call__(self, config: TrainConfig, dataset: DatasetRecord, output_dir: Path, *,
                 on_progress: Callable[[int, dict[str, float]], None], should_stop: Callable[[], bool],
                 resume: bool = False): ...


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

    def gpus(self) -> tuple[str, ...]:
        """The GPUs runs may use (none on a CPU, and none with launcher=thread: it has no GPU choice)."""
        return visible_gpus(self._settings) if self.uses_processes else ()

    def launch_command(self, run_id: int | str = "<run id>", gpu_request: str | None = None) -> str:
        """The exact `accelerate launch` command the next run would be started with (the Train tab shows it),
        on the GPUs `gpu_request` asks for (see launch.parse_gpu_request), else the default set."""
        gpus = visible_gpus(self._settings)
        wanted = parse_gpu_request(gpu_request, gpus) if gpus else None
        if isinstance(wanted, tuple):
            chosen = wanted
        else:
            chosen = gpus[:wanted or ((self._settings.gpus_per_run or len(gpus)) if gpus else 0)]
        command = plan_launch(self._settings, run_id, chosen, port=0).command_line().replace(
            "--main_process_port 0", "--main_process_port <free port>")
        if self._settings.machines > 1:
            command += f"\n# then on each other machine (ranks 1 to {self._settings.machines - 1}):\n" + \
                join_command(run_id)
        return command

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
    def submit(self, config: TrainConfig, gpus: str | None = None) -> int:
        """Validate the dataset reference (and the GPU choice: "all", "one", ids), queue a run and wake a
        worker; returns the run id."""
        if config.dataset_id is None:  # e.g. the config of an imported model
            raise UserError("Pick a dataset to train on: this configuration has none.")
        dataset = self._repo.get_dataset(config.dataset_id)
        if dataset.task != config.task:
            raise UserError(f"Dataset {dataset.id} was prepared for {dataset.task}, not {config.task}. "
                            "Pick a dataset uploaded for this task, or upload it again with that task.")
        if gpus:
            parse_gpu_request(gpus, self.gpus())  # UserError now, not once the run is claimed
        run_id = self._repo.create_run(config, gpu_request=gpus or None)
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
        liveness.sweep(self._repo, self._settings.heartbeat_timeout_s)  # a run whose worker died is resumable now
        deadline = time.monotonic() + RESUME_WAIT_S
        while run_id in self._stops and time.monotonic() < deadline:  # its processes are still exiting
            time.sleep(0.05)
        if run_id in self._stops:
            raise UserError(f"Run {run_id} is still saving its checkpoint. Resume it again in a few seconds.")
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
                WorkerSupervisor(self._repo, self._settings, self._pool(), self._shutdown, self._listeners).execute(
                    run_id, stop)
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
            rewind_metrics(self._repo, run_id, output_dir, resume)
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
