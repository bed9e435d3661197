"""Truthful run status: a `running` run whose training process is gone becomes `interrupted`.

Every reader (the UI's polling, `python app.py runs`, resume) sweeps before it reads, so a run
killed by `kill -9` or the OOM killer shows `interrupted` at the next read, with no server
running. On the run's own host the recorded pid + process start time decide; a run trained on
another machine (a shared PostgreSQL) is judged by its heartbeat.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from backend.jobs.processes import is_alive, this_host
from storage.models import utcnow
from storage.records import RunRecord
from storage.repository import Repository

log = logging.getLogger(__name__)


def why_gone(run: RunRecord, *, host: str, heartbeat_timeout_s: float, now: datetime,
             unowned_are_orphans: bool = False) -> str | None:
    """Why `run`'s training process is gone (the run's new error text), or None while it may live.

    `unowned_are_orphans`: a run with no recorded process (written before migration 0005) is dead,
    as at the start of an app that owns its SQLite file.
    """
    if run.worker_pid and run.worker_host == host:
        if is_alive(run.worker_pid, run.worker_started):
            return None
        return (f"The training process (pid {run.worker_pid}) has ended without finishing the run: it was killed "
                "(for instance out of memory) or crashed. Resume it to continue from its last checkpoint.")
    if run.worker_pid is None and unowned_are_orphans:
        return "The app stopped while this run was training. Resume it to continue from its last checkpoint."
    stale = run.heartbeat_at is None or now - run.heartbeat_at > timedelta(seconds=heartbeat_timeout_s)
    if stale:
        where = f" on {run.worker_host}" if run.worker_host else ""
        return (f"The training process{where} has not reported for over {heartbeat_timeout_s:.0f} s: it died or "
                "lost its connection to the database. Resume it to continue from its last checkpoint.")
    return None


def sweep(repo: Repository, heartbeat_timeout_s: float, *, unowned_are_orphans: bool = False) -> list[int]:
    """Mark every `running` run whose process is gone as `interrupted`; returns their ids."""
    host, now, swept = this_host(), utcnow(), []
    for run in repo.running_runs():
        reason = why_gone(run, host=host, heartbeat_timeout_s=heartbeat_timeout_s, now=now,
                          unowned_are_orphans=unowned_are_orphans)
        if reason and repo.mark_interrupted(run.id, reason):
            swept.append(run.id)
    if swept:
        log.warning("runs %s: their training process is gone; now interrupted", swept)
    return swept
