"""Wire the process together once: settings -> engine -> repository -> job runner."""

from __future__ import annotations

from dataclasses import dataclass

from backend.jobs import JobRunner
from backend.settings import Settings
from storage.database import make_engine, make_sessions, migrate
from storage.repository import Repository


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


def device_description(settings: Settings) -> str:
    """Human name of the device training will use: 'CPU', or the GPU's name."""
    import torch

    if settings.device in ("auto", "cuda") and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if settings.device in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    return "CPU"
