"""The supervisor of one run's worker processes: launch, watch, stop, and record what the worker could not.

A supervisor thread of the JobRunner calls `WorkerSupervisor.execute` for each run it claims. The
run trains in its own process group, started by Accelerate's launcher (backend.jobs.launch) on a
GPU set from the pool; the worker (backend.jobs.worker) writes progress and the final status
itself. The supervisor waits until every process of the run has ended (torchrun's ranks run in
sessions of their own, so it tracks the launcher's descendants too), forwards progress to
listeners (the CLI prints it), turns Stop into SIGTERM (SIGKILL after `stop_grace_s`), the app's
shutdown into SIGINT, and records a run whose worker died as `interrupted`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backend.errors import Cancelled
from backend.jobs.launch import PROJECT_ROOT, SUPERVISOR_PID, SUPERVISOR_STARTED, GpuPool, LaunchPlan, plan_launch
from backend.jobs.join import join_command, write_topology
from backend.jobs.processes import any_alive, describe_exit, descendants, signal_group, signal_processes, start_time, \
    this_host
from backend.jobs.reporting import explain, has_checkpoint, log_line, rewind_metrics
from backend.settings import Settings
from storage.repository import Repository

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
SUPERVISE_POLL_S = 0.25  # how often a supervisor looks at its worker's processes


class WorkerSupervisor:
    """Trains runs in worker processes for one JobRunner (its repository, settings, shutdown flag, listeners)."""

    def __init__(self, repo: Repository, settings: Settings, pool: GpuPool, shutdown: threading.Event,
                 listeners: list[Callable[[int, int, dict[str, float]], None]]) -> None:
        self._repo, self._settings, self._pool = repo, settings, pool
        self._shutdown, self._listeners = shutdown, listeners

    def execute(self, run_id: int, stop: threading.Event) -> None:
        """Launch the run's worker processes, supervise them to their end, record what the worker could not."""
        run = self._repo.get_run(run_id)
        output_dir = Path(run.output_dir or self._settings.runs_dir / str(run_id))
        gpus: tuple[str, ...] | None = None
        try:
            config = run.config
            dataset = self._repo.get_dataset(config.dataset_id)
            resume = has_checkpoint(output_dir)
            rewind_metrics(self._repo, run_id, output_dir, resume)
            gpus = self._wait_for_gpus(stop, run.gpu_request)
            if gpus is None:  # stopped while waiting for a GPU: nothing trained, nothing to save
                raise Cancelled()
            plan = plan_launch(self._settings, run_id, gpus)
            log_line(output_dir, f"{'resuming' if resume else 'starting'} {config.template.kind} on dataset "
                                 f"{dataset.id} ({dataset.train_rows} training rows): {plan.command_line()}")
            if plan.machines > 1:  # the other machines read where to meet from the shared run folder
                output_dir.mkdir(parents=True, exist_ok=True)
                write_topology(output_dir, plan)
                log_line(output_dir, f"waiting for {plan.machines - 1} more machine(s); on each, run: "
                                     f"{join_command(run_id)} (ranks 1 to {plan.machines - 1})")
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
                self._pool.give_back(gpus)

    def _wait_for_gpus(self, stop: threading.Event, request: str | None) -> tuple[str, ...] | None:
        while not stop.is_set():
            gpus = self._pool.take(request)
            if gpus is not None:
                return gpus
            stop.wait(IDLE_POLL_S)
        return None

    def _launch(self, run_id: int, plan: LaunchPlan, output_dir: Path) -> subprocess.Popen:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / "train.log", "ab") as out:  # the launcher and every rank write here
            # The worker watches this process: killed outright, the run checkpoints and ends interrupted.
            supervisor = {SUPERVISOR_PID: str(os.getpid()), SUPERVISOR_STARTED: str(start_time(os.getpid()) or "")}
            process = subprocess.Popen(plan.argv, env={**os.environ, **plan.env, **supervisor}, cwd=str(PROJECT_ROOT),
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
        killed = False
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
                    if not killed:
                        log.warning("run %d did not stop within %.0f s: killing its processes", run_id,
                                    self._settings.stop_grace_s)
                    killed = True
                    signal_group(process.pid, signal.SIGKILL)  # again each poll: a rank may have been starting
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
        message = (f"The training process ended without finishing the run ({describe_exit(returncode)}){hint}; "
                   "its train.log says more. Resume it to continue from its last checkpoint.")
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
