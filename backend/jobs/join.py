"""The other machines of a multi-machine run: `python app.py join --run ID --machine-rank R`.

Machine 0 (the app, or `python app.py train`) claims the run, picks the rendezvous port and
writes the run's topology to `machines.json` in the run folder (the home folder is shared). A
joining machine reads it, starts its own processes with Accelerate's launcher
(`--num_machines M --machine_rank R --main_process_ip ... --main_process_port ...`) and waits for
them. It never writes the run's state: rank 0 (on machine 0) writes metrics, checkpoints and the
final status, and machine 0's supervisor records a run whose workers died. The joining side logs
to `train-machine<R>.log`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from backend.errors import UserError
from backend.jobs.launch import PROJECT_ROOT, SUPERVISOR_PID, SUPERVISOR_STARTED, LaunchPlan, plan_launch, \
    visible_gpus
from backend.jobs.processes import any_alive, descendants, signal_group, signal_processes, start_time
from backend.settings import Settings
from storage.repository import Repository

log = logging.getLogger(__name__)

TOPOLOGY_FILE = "machines.json"
JOIN_POLL_S = 0.5


@dataclass(frozen=True)
class Topology:
    """What every machine of a run must agree on, as machine 0 launched it."""

    machines: int
    processes_per_machine: int
    main_ip: str
    port: int


def write_topology(output_dir: Path, plan: LaunchPlan) -> None:
    """Machine 0: tell the joining machines where to meet (the run folder is on the shared home)."""
    topology = Topology(machines=plan.machines, processes_per_machine=plan.num_processes, main_ip=plan.main_ip,
                        port=plan.port)
    path = output_dir / TOPOLOGY_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(topology.__dict__), encoding="utf-8")
    temporary.replace(path)  # a joining machine never reads half a file


def join_command(run_id: int | str, machine_rank: int | str = "<machine rank>") -> str:
    """What to type on each other machine (with the same MODELSMITH_DATABASE_URL and MODELSMITH_HOME)."""
    return f"python app.py join --run {run_id} --machine-rank {machine_rank}"


def read_topology(output_dir: Path) -> Topology | None:
    """The topology machine 0 wrote for its current launch, or None before it has launched."""
    try:
        return Topology(**json.loads((output_dir / TOPOLOGY_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def wait_for_launch(repo: Repository, run_id: int, machine_rank: int, timeout_s: float) -> tuple[Path, Topology]:
    """Wait until machine 0 has launched the run (it is `running` and has written where to meet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = repo.get_run(run_id)
        if run.status not in ("queued", "running"):
            raise UserError(f"Run {run_id} is {run.status}: there is nothing to join. Resume it on machine 0 "
                            f"first, then join again.")
        topology = read_topology(Path(run.output_dir)) if run.output_dir and run.worker_port else None
        if run.status == "running" and topology is not None and topology.port == run.worker_port:
            if not 0 < machine_rank < topology.machines:
                raise UserError(f"Run {run_id} spans {topology.machines} machines: --machine-rank must be "
                                f"1 to {topology.machines - 1} (0 is the machine that launched it).")
            return Path(run.output_dir), topology
        if time.monotonic() > deadline:
            raise UserError(f"Run {run_id} has not been launched as a multi-machine run within {timeout_s:.0f} s. "
                            "Start it on machine 0 with MODELSMITH_MACHINES set (or `python app.py train --nodes "
                            "M`), with the same database and home folder as this machine.")
        time.sleep(JOIN_POLL_S)


def join_run(repo: Repository, settings: Settings, run_id: int, machine_rank: int,
             timeout_s: float = 600.0) -> int:
    """Start this machine's processes of run `run_id` and wait for them; their exit code."""
    output_dir, topology = wait_for_launch(repo, run_id, machine_rank, timeout_s)
    settings = settings.model_copy(update={"machines": topology.machines,
                                           "cpu_processes_per_run": topology.processes_per_machine})
    gpus = visible_gpus(settings)[:topology.processes_per_machine]  # () on a CPU
    if gpus and len(gpus) < topology.processes_per_machine:
        raise UserError(f"Run {run_id} takes {topology.processes_per_machine} GPUs on each machine; this one has "
                        f"{len(gpus)}.")
    plan = plan_launch(settings, run_id, gpus, topology.port, machine_rank=machine_rank, main_ip=topology.main_ip)
    log.info("run %d: joining as machine %d of %d: %s", run_id, machine_rank, topology.machines, plan.command_line())
    supervisor = {SUPERVISOR_PID: str(os.getpid()), SUPERVISOR_STARTED: str(start_time(os.getpid()) or "")}
    with open(output_dir / f"train-machine{machine_rank}.log", "ab") as out:
        process = subprocess.Popen(plan.argv, env={**os.environ, **plan.env, **supervisor}, cwd=str(PROJECT_ROOT),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    tree = {(process.pid, start_time(process.pid))}
    try:
        while process.poll() is None or any_alive(tree):
            tree |= set(descendants(process.pid))
            time.sleep(JOIN_POLL_S)
    except BaseException:  # Ctrl-C: this machine's ranks checkpoint with the others and end
        signal_group(process.pid, signal.SIGINT)
        signal_processes(tree, signal.SIGINT)
        try:
            process.wait(timeout=settings.stop_grace_s)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            signal_processes(tree, signal.SIGKILL)
        raise
    return process.returncode
