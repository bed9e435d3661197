"""Wire the process together once: settings -> engine -> repository -> job runner."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import IO

from backend.errors import UserError
from backend.jobs.runner import JobRunner
from backend.settings import Settings
from storage.database import make_engine, make_sessions, migrate
from storage.repository import Repository

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the UI and the CLI need; built by `build_services` and passed down explicitly."""

    settings: Settings
    repo: Repository
    runner: JobRunner
    engine: object

    def close(self) -> None:
        """Stop the workers and release the database."""
        self.runner.shutdown()
        self.engine.dispose()


def build_services(settings: Settings, *, train_fn=None) -> Services:
    """Create the home dir, migrate the DB to head and build the repository and job runner."""
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    repo = Repository(make_sessions(engine))
    return Services(settings=settings, repo=repo, runner=JobRunner(repo, settings, train_fn=train_fn), engine=engine)


def lock_home(settings: Settings) -> IO[str] | None:
    """Claim the home dir for this serving process; UserError if another app already serves it.

    The serving app owns its database: at start-up it marks every `running` run as interrupted,
    and its workers claim queued runs. A second app on the same home would do both to the first
    one's jobs. The lock is the open file itself (released by the OS when the process ends, even
    on SIGKILL), so keep the returned handle for the life of the process.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one app per home is then the person's job
        return None
    settings.ensure_dirs()
    handle = open(settings.home / ".serving.lock", "a+", encoding="utf-8")  # kept open: the open file is the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(f"Another Modelsmith app (process {owner}) is already serving {settings.home.resolve()}. "
                        "Stop it first, or set MODELSMITH_HOME to another folder.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    log.debug("serving %s as process %d", settings.home, os.getpid())
    return handle


def device_description(settings: Settings) -> str:
    """Human name of the device training will use: 'CPU', or the GPU's name."""
    import torch

    if settings.device in ("auto", "cuda") and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if settings.device in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    return "CPU"
