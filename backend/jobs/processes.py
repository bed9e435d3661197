"""Is the process that trains a run still there? pid + start time on this host, heartbeat elsewhere.

A pid alone proves nothing: after a crash the kernel may give it to another process. The start
time of the process makes the pair unique. psutil reads both where it is installed; on Linux
without it, /proc says the same (start time = boot time + starttime ticks).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

START_TOLERANCE_S = 1.0  # /proc and psutil round the start time differently; a reused pid starts much later

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in requirements.txt; /proc is the fallback on Linux
    psutil = None


def this_host() -> str:
    """The name the runs of this machine are recorded under."""
    return socket.gethostname()


def start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when there is no such live process."""
    if pid <= 0:
        return None
    if psutil is not None:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: gone for our purpose
                return None
            return process.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    return _proc_start_time(pid)


def _proc_start_time(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # field 3, the state: a zombie
        return None
    ticks = int(fields[19])  # field 22 of the whole line, starttime in clock ticks after boot
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def is_alive(pid: int | None, started: float | None) -> bool:
    """Whether the process `pid` that started at `started` still runs on this host."""
    if not pid:
        return False
    now_started = start_time(pid)
    if now_started is None:
        return False
    return started is None or abs(now_started - started) <= START_TOLERANCE_S


def descendants(pid: int) -> list[tuple[int, float]]:
    """(pid, start time) of every live process below `pid` (torchrun's workers sit in sessions of their own)."""
    if psutil is not None:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                found.append((child.pid, child.create_time()))
            except psutil.NoSuchProcess:
                continue
        return found
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        started = _proc_start_time(child)
        if started is not None:
            found.append((child, started))
        todo.extend(parents.get(child, []))
    return found


def signal_processes(processes: Iterable[tuple[int, float | None]], sig: int) -> None:
    """Send `sig` to each (pid, start time) that is still that same process."""
    for pid, started in processes:
        if is_alive(pid, started):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group; nothing when it is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def any_alive(processes: Iterable[tuple[int, float | None]]) -> bool:
    """Whether any of the (pid, start time) pairs still runs."""
    return any(is_alive(pid, started) for pid, started in processes)


def describe_exit(returncode: int | None) -> str:
    """'exit code 1' or 'killed by SIGKILL' for a finished process's return code."""
    if returncode is None:
        return "no exit code"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
