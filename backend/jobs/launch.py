"""The `accelerate launch` command a run trains with, and the GPU sets the queue hands out.

    python -m accelerate.commands.launch --num_processes N [--multi_gpu | --cpu] --main_process_port P \
        -m backend.jobs.worker --run-id ID

(`accelerate launch`, run as this Python's module: see accelerate_executable.)

One process per GPU of the run (CUDA_VISIBLE_DEVICES names them), or `cpu_processes_per_run` on
a CPU. Accelerate's own launcher starts them: torchrun's elastic agent when N > 1 (on a CPU too,
where the worker's Accelerator(cpu=True) then talks gloo), a plain subprocess when N == 1.

A run may span `settings.machines` machines: each starts the same number of processes, machine 0
(the app or `python app.py train`) with `--machine_rank 0`, each other machine through
`python app.py join --run ID --machine-rank R` (backend.jobs.join), all with Accelerate's
`--num_machines M --main_process_ip ... --main_process_port ...`; `--num_processes` counts them all.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import UserError
from backend.settings import Settings

log = logging.getLogger(__name__)

WORKER_MODULE = "backend.jobs.worker"
# The supervising process (pid, start time), handed to the worker: it stops when that process is gone.
SUPERVISOR_PID = "MODELSMITH_SUPERVISOR_PID"
SUPERVISOR_STARTED = "MODELSMITH_SUPERVISOR_STARTED"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LaunchPlan:
    """How one run is started: the argv, the environment it adds, its GPUs and port."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    gpus: tuple[str, ...] = ()  # empty: the CPU
    port: int = 0
    num_processes: int = 1  # on this machine
    machines: int = 1
    machine_rank: int = 0
    main_ip: str = ""  # the address the other machines reach machine 0 at (several machines only)

    def command_line(self) -> str:
        """The command as a person would type it (what the Train tab shows)."""
        shown = {k: v for k, v in self.env.items() if k == "CUDA_VISIBLE_DEVICES"}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in shown.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def accelerate_executable() -> list[str]:
    """Accelerate's launcher as this Python's module: `python -m accelerate.commands.launch`.

    The same `accelerate launch` (its main() parses the same arguments and calls the same
    launch_command), without the `accelerate` console script's import of every other subcommand:
    1.5 s of CPU less at every run's start on the 2-core machine (4.1 s against 2.6 s user time).
    """
    return [sys.executable, "-m", "accelerate.commands.launch"]


def free_port() -> int:
    """A TCP port nobody listens on now, for the run's rendezvous (torch.distributed's store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plan_launch(settings: Settings, run_id: int | str, gpus: tuple[str, ...] = (), port: int | None = None, *,
                machine_rank: int = 0, main_ip: str | None = None) -> LaunchPlan:
    """The launch of run `run_id` on `gpus` (none: the CPU) with this app's settings, as machine `machine_rank`
    of `settings.machines` (rendezvous at `main_ip`:`port`, machine 0's address and port)."""
    port = free_port() if port is None else port
    on_cpu = not gpus
    processes = settings.cpu_processes_per_run if on_cpu else len(gpus)
    machines = settings.machines
    total = processes * machines
    argv = [*accelerate_executable(), "--num_processes", str(total), "--num_machines", str(machines)]
    main_ip = (main_ip or settings.main_process_ip or this_address()) if machines > 1 else ""
    if machines > 1:
        argv += ["--machine_rank", str(machine_rank), "--main_process_ip", main_ip]
    if total > 1:
        argv.append("--multi_gpu")  # torchrun starts the N processes; on a CPU they talk gloo
    elif on_cpu:
        argv.append("--cpu")
    # The worker builds its own Accelerator with the app's precision (Settings): the launcher's only says 'no'.
    argv += ["--mixed_precision", "no", "--dynamo_backend", "no",
             "--num_cpu_threads_per_process",
             str(settings.cpu_threads_per_process or threads_per_process(processes)),
             "--main_process_port", str(port), "-m", WORKER_MODULE, "--run-id", str(run_id)]
    env = worker_environment(settings)
    if not on_cpu:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return LaunchPlan(argv=argv, env=env, gpus=tuple(gpus), port=port, num_processes=processes,
                      machines=machines, machine_rank=machine_rank, main_ip=main_ip)


def this_address() -> str:
    """This machine's name, as the other machines of a run reach it (MODELSMITH_MAIN_PROCESS_IP overrides it)."""
    return socket.getfqdn()


def threads_per_process(processes: int) -> int:
    """CPU threads each process may use: the cores shared out (at least one)."""
    return max(1, (os.cpu_count() or 1) // processes)


def worker_environment(settings: Settings) -> dict[str, str]:
    """The variables that give the worker this app's settings (not whatever its shell says)."""
    env = {"MODELSMITH_HOME": str(Path(settings.home).resolve()),
           "MODELSMITH_DATABASE_URL": settings.resolved_database_url,
           "MODELSMITH_DEVICE": settings.device, "MODELSMITH_MIXED_PRECISION": settings.mixed_precision,
           "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    # Settings the training reads (backend.tasks.image_classification.training): the app's values,
    # whichever .env or shell the worker would otherwise see.
    env["MODELSMITH_IMAGE_CACHE_MB"] = str(settings.image_cache_mb)
    if settings.image_workers is not None:
        env["MODELSMITH_IMAGE_WORKERS"] = str(settings.image_workers)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def visible_gpus(settings: Settings) -> tuple[str, ...]:
    """GPU ids runs may use: `settings.gpus`, else every CUDA device (none on a CPU-only machine)."""
    if settings.device == "cpu":
        return ()
    if settings.gpus.strip():
        return tuple(g.strip() for g in settings.gpus.split(",") if g.strip())
    if sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia[0-9]*")):
        return ()  # no NVIDIA device file: no CUDA GPU, and no need to import torch to find that out
    import torch  # only the supervisor asks, after the app has loaded torch in the background

    return tuple(str(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


def concurrent_runs(settings: Settings, gpus: tuple[str, ...]) -> int:
    """How many runs train at once: the setting, else one per GPU set (one on a CPU)."""
    if settings.launcher == "thread":
        return 1
    if settings.max_concurrent_jobs:
        return settings.max_concurrent_jobs
    if not gpus:
        return 1
    per_run = settings.gpus_per_run or len(gpus)
    return max(1, len(gpus) // per_run)


GPU_COUNTS = {"all": 0, "one": 1}  # 0: every GPU the app may use


def parse_gpu_request(request: str | None, gpus: tuple[str, ...]) -> int | tuple[str, ...] | None:
    """What a run asked for ("all", "one", or the GPU ids "0,2"), checked against `gpus`: a count, the
    ids, or None (the app's default). UserError for a request this machine cannot meet."""
    text = (request or "").strip().lower()
    if not text:
        return None
    if not gpus:
        raise UserError(f"This run asks for GPUs ({request}) but this machine trains on the CPU. "
                        "Start it without a GPU choice.")
    if text in GPU_COUNTS:
        return GPU_COUNTS[text] or len(gpus)
    picked = tuple(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    unknown = [g for g in picked if g not in gpus]
    if unknown or not picked:
        raise UserError(f"GPU {', '.join(unknown) or repr(request)} is not one this app may use: give \"all\", "
                        f"\"one\" or GPU ids from {', '.join(gpus)} (e.g. {','.join(gpus[:2])}).")
    return picked


class GpuPool:
    """Hands out disjoint GPU sets to runs and takes them back; on a CPU-only machine, empty sets."""

    def __init__(self, gpus: tuple[str, ...], per_run: int) -> None:
        self._all = tuple(gpus)
        self._free = list(gpus)
        self._per_run = min(per_run or len(gpus), len(gpus)) if gpus else 0
        self._lock = threading.Lock()

    def take(self, request: str | None = None) -> tuple[str, ...] | None:
        """A GPU set for the next run ((), on the CPU), or None while the GPUs it needs are busy.

        `request`: the run's own choice ("all", "one", ids; see parse_gpu_request), else `per_run`."""
        wanted = parse_gpu_request(request, self._all) if self._per_run else None
        with self._lock:
            if not self._per_run:
                return ()
            if isinstance(wanted, tuple):  # these GPUs and no others
                if not all(g in self._free for g in wanted):
                    return None
                self._free = [g for g in self._free if g not in wanted]
                return wanted
            count = wanted or self._per_run
            if len(self._free) < count:
                return None
            taken, self._free = tuple(self._free[:count]), self._free[count:]
            return taken

    def give_back(self, gpus: tuple[str, ...]) -> None:
        """Return a run's GPUs once all its processes are gone."""
        with self._lock:
            self._free.extend(g for g in gpus if g not in self._free)
