"""The worker: one run, trained in the processes `accelerate launch` starts, through the shared core.

    accelerate launch --num_processes N [--multi_gpu | --cpu] --main_process_port P \
        -m backend.jobs.worker --run-id ID

Every process trains (data-parallel); only rank 0 writes: metrics and heartbeat to the database,
checkpoints and the final model to the run folder (backend.training.checkpoints / core), and the
run's final status. Settings (home, database, device, precision) come from the environment the
supervisor sets (backend.jobs.launch.worker_environment).

Signals: SIGTERM = Stop (checkpoint, then `cancelled`); SIGINT = the app is shutting down
(checkpoint, then `interrupted`). The ranks agree on stopping at the same optimizer step, so
none is left waiting in an all-reduce for a rank that has left.

A worker never trains on unsupervised: when the process that supervises it (the app, or
`python app.py train`; its pid and start time come in SUPERVISOR_PID / SUPERVISOR_STARTED) is
gone, killed outright, the worker saves a checkpoint and ends `interrupted`, as it does when the
app shuts down. Nobody else would stop it, kill it after a grace period, or count its GPUs as taken.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from backend.errors import Cancelled
from backend.jobs.launch import SUPERVISOR_PID, SUPERVISOR_STARTED
from backend.jobs.processes import is_alive
from backend.jobs.reporting import HEARTBEAT_EVERY_S, explain, has_checkpoint, log_line, record_progress
from backend.log_format import configure_logging
from backend.settings import Settings
from storage.database import make_engine, make_sessions
from storage.repository import Repository

log = logging.getLogger("modelsmith.worker")

PARENT_CHECK_S = 1.0  # how soon a worker notices that its launcher or its supervisor was killed
SUPERVISOR_GONE = ("The app (or `python app.py train`) that supervised this run was killed, so the run saved a "
                   "checkpoint and stopped. Resume it to continue from its last checkpoint.")


class StopRequest:
    """Set by a signal (or by the launcher or supervisor going away); says which final status the run gets."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.status = "cancelled"
        self.reason: str | None = None  # the run's error text, when the status needs one

    def request(self, status: str, reason: str | None = None) -> None:
        if not self.event.is_set():
            self.status, self.reason = status, reason
        self.event.set()

    def install(self) -> None:
        """SIGTERM stops the run (`cancelled`), SIGINT interrupts it (`interrupted`)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request("cancelled"))
        signal.signal(signal.SIGINT, lambda *_: self.request("interrupted"))


def agreed(accelerator, local: threading.Event):
    """should_stop() for the trainer: true on every rank as soon as any rank was asked to stop."""
    if accelerator.num_processes == 1:
        return local.is_set

    import torch

    def should_stop() -> bool:
        # One tiny all-reduce per optimizer step; every rank calls it at the same step.
        flag = torch.tensor([1.0 if local.is_set() else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    return should_stop


PEER_FAILURE_SIGNS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo", "NCCL")


def lost_a_peer(exc: BaseException, accelerator) -> bool:
    """Whether `exc` is a collective that failed because another rank of the run is gone."""
    if accelerator.num_processes == 1:
        return False
    import torch.distributed as dist

    dist_error = getattr(dist, "DistError", None)
    return (dist_error is not None and isinstance(exc, dist_error)) or any(
        sign in str(exc) for sign in PEER_FAILURE_SIGNS)


def supervisor_of_this_worker() -> tuple[int, float | None] | None:
    """(pid, start time) of the process that supervises this run, from the environment (None: not known)."""
    try:
        pid = int(os.environ.get(SUPERVISOR_PID, ""))
    except ValueError:
        return None
    started = os.environ.get(SUPERVISOR_STARTED, "")
    return pid, float(started) if started else None


def watch(repo: Repository, run_id: int, stop: StopRequest, done: threading.Event, beat: bool) -> None:
    """Beat the heartbeat (rank 0); stop when the launcher or the supervisor above us is gone (killed)."""
    parent, next_beat = os.getppid(), time.monotonic() + HEARTBEAT_EVERY_S
    supervisor = supervisor_of_this_worker()
    while not done.wait(PARENT_CHECK_S):
        if os.getppid() != parent:  # re-parented: the launcher died, nobody waits for this run any more
            stop.request("interrupted", SUPERVISOR_GONE)
        if supervisor is not None and not is_alive(*supervisor):
            stop.request("interrupted", SUPERVISOR_GONE)
        if beat and time.monotonic() >= next_beat:
            next_beat = time.monotonic() + HEARTBEAT_EVERY_S
            try:
                repo.heartbeat(run_id)
            except Exception:  # a missed beat is harmless; never kill the run for it
                log.debug("heartbeat failed for run %d", run_id, exc_info=True)


def train_run(run_id: int, settings: Settings) -> int:
    """Train run `run_id` in this process (one rank of it); the process exit code."""
    from backend.training.devices import get_accelerator  # torch: only in the worker
    from backend.training.run import train

    stop = StopRequest()
    stop.install()
    engine = make_engine(settings.resolved_database_url)
    repo = Repository(make_sessions(engine))
    run = repo.get_run(run_id)
    output_dir = Path(run.output_dir or settings.runs_dir / str(run_id))
    accelerator = get_accelerator(settings.device, settings.mixed_precision)
    main = accelerator.is_main_process
    done = threading.Event()
    threading.Thread(target=watch, args=(repo, run_id, stop, done, main), daemon=True).start()
    log.info("run %d: rank %d of %d on %s", run_id, accelerator.process_index, accelerator.num_processes,
             accelerator.device)

    def on_progress(step: int, values: dict) -> None:
        if main:
            record_progress(repo, run_id, output_dir, step, values)

    agree_at_exit = True  # a failed rank must not wait at a barrier the others never reach
    try:
        config = run.config
        dataset = repo.get_dataset(config.dataset_id)
        result = train(config, dataset, output_dir, on_progress=on_progress,
                       should_stop=agreed(accelerator, stop.event), resume=has_checkpoint(output_dir),
                       accelerator=accelerator)
    except Cancelled:
        if main:
            repo.finish(run_id, stop.status, error=stop.reason)
            log_line(output_dir, f"run {stop.status}{': ' + stop.reason if stop.reason else ''}; "
                                 "last checkpoint kept for resume")
        return 0
    except Exception as exc:  # the run fails, with a readable reason; the app is untouched
        agree_at_exit = False
        if lost_a_peer(exc, accelerator):  # another rank was killed: resumable, not the run's fault
            log.warning("run %d: another process of the run is gone (%s)", run_id, str(exc).splitlines()[0][:200])
            if main:
                repo.mark_interrupted(run_id, "Another process of this run died (killed, or out of memory), so the "
                                              "run stopped. Resume it to continue from its last checkpoint.")
            return 1
        log.exception("run %d failed", run_id)
        if main:
            message = explain(exc)
            repo.finish(run_id, "failed", error=message)
            log_line(output_dir, f"FAILED: {message}")
        return 1
    else:
        if main:
            repo.finish(run_id, "succeeded", metrics=result.metrics)
            repo.add_artifact(run_id, "model", str(output_dir))
            log_line(output_dir, "run succeeded")
        return 0
    finally:
        done.set()
        if agree_at_exit:
            accelerator.wait_for_everyone()  # rank 0 has written the final status before any rank exits
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train one Modelsmith run (started by `accelerate launch`).")
    parser.add_argument("--run-id", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging()
    for noisy in ("accelerate", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return train_run(args.run_id, Settings())


if __name__ == "__main__":
    sys.exit(main())
