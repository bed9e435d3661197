"""Wire the process together once (settings -> engine -> repository -> job runner), and the service
functions the UI calls: the UI talks to the backend through these, never to the repository itself.

Record types, the repository's errors and the task registry are re-exported here for the same reason:
`ui/` imports `backend`, and only `backend` imports `storage`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.errors import UserError
from backend.jobs.runner import JobRunner
from backend.settings import Settings
from backend.tasks.base import Task
from backend.tasks.registry import DEFAULT_TASK, TASKS, get_task, list_tasks, task_of_template
from storage.database import DatabaseUnavailable, make_engine, make_sessions, migrate
from storage.models import utcnow  # noqa: F401 (re-exported for the UI)
from storage.records import DatasetRecord, DemoRecord, MetricRecord, RunRecord  # noqa: F401 (re-exported)
from storage.repository import InUse, NotFound, Repository  # noqa: F401 (re-exported)

__all__ = ["Services", "build_services", "lock_home", "device_description", "list_tasks", "get_task", "default_task",
           "task_names", "task_of_template", "task_of_run", "DatasetRecord", "DemoRecord", "MetricRecord",
           "RunRecord", "InUse", "NotFound", "utcnow"]

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

    @property
    def shares_database(self) -> bool:
        """True for a database server (PostgreSQL) that apps and workers on other machines may use too."""
        return self.engine.dialect.name != "sqlite"

    def recover_at_start(self) -> list[int]:
        """Mark the runs a dead process left `running` as `interrupted` when the app starts; returns their ids.

        A SQLite file belongs to this app (one serving app per home), so every `running` row is an
        orphan. A shared server may hold runs that live processes elsewhere are training: only
        those whose heartbeat is stale are dead, and the workers' periodic sweep takes the rest.
        """
        return self.runner.recover(all_running=not self.shares_database)

    # ---- datasets ------------------------------------------------------------------------
    def list_datasets(self) -> list[DatasetRecord]:
        """Every stored dataset, newest first."""
        return self.repo.list_datasets()

    def get_dataset(self, dataset_id: int) -> DatasetRecord:
        """One dataset; NotFound when it does not exist."""
        return self.repo.get_dataset(int(dataset_id))

    def rename_dataset(self, dataset_id: int, name: str) -> None:
        """Give a dataset a new name."""
        self.repo.rename_dataset(int(dataset_id), name)

    def ingest(self, path: Path, options, validation_path: Path | None = None):
        """Prepare and store an uploaded dataset file (backend.data.store.ingest) under this app's limits."""
        from backend.data.store import ingest

        return ingest(path, options, validation_path=validation_path, settings=self.settings, repo=self.repo)

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a dataset and its files; InUse while runs use it."""
        from backend.data.store import delete_dataset

        delete_dataset(self.repo, int(dataset_id))

    # ---- runs ----------------------------------------------------------------------------
    def list_runs(self, status: str | None = None) -> list[RunRecord]:
        """Every run (or those with `status`), newest first; a run whose worker died reads `interrupted`."""
        self.runner.sweep_for_readers()
        return self.repo.list_runs(status)

    def get_run(self, run_id: int) -> RunRecord:
        """One run; NotFound when it does not exist. A run whose worker died reads `interrupted`."""
        self.runner.sweep_for_readers()
        return self.repo.get_run(int(run_id))

    def queued_runs(self) -> list[RunRecord]:
        """Runs waiting for a worker, in the order they will start."""
        return self.repo.queued_runs()

    def launch_command(self, gpu_request: str | None = None) -> str:
        """The exact `accelerate launch` command a new run starts with, on the GPUs `gpu_request` asks for
        ('' when runs train in this process)."""
        return self.runner.launch_command(gpu_request=gpu_request) if self.runner.uses_processes else ""

    def gpus(self) -> tuple[str, ...]:
        """The GPUs a run may be given (empty on a CPU, or when runs train in this process)."""
        return self.runner.gpus()

    def get_metrics(self, run_id: int, keys: list[str] | None = None) -> list[MetricRecord]:
        """A run's recorded progress (only `keys` when given)."""
        return self.repo.get_metrics(int(run_id), keys)

    def best_so_far_by_run(self, runs: list[RunRecord]) -> dict[int, str]:
        """For runs still training: the best score of their evaluations so far, as the runs table shows it."""
        from backend.run_review import best_so_far_by_run

        return best_so_far_by_run(self.repo, runs)

    def misclassified(self, run_id: int, limit: int = 50):
        """Validation texts a finished classifier gets wrong, most confident mistakes first (a DataFrame)."""
        from backend.run_review import misclassified

        return misclassified(self.repo, int(run_id), limit)

    def misclassified_images(self, run_id: int, limit: int = 24) -> list[tuple[bytes, str]]:
        """Validation images a finished image classifier got wrong, most confident first: (image, caption)."""
        from backend.tasks.image_classification.review import misclassified_images

        run = self.repo.get_run(int(run_id))
        if run.dataset_id is None or run.status != "succeeded":
            return []
        return misclassified_images(run, self.repo.get_dataset(run.dataset_id), limit)

    def language_model_folder(self, run_id) -> Path:
        """The model folder of a succeeded run that generates text; UserError saying which run to pick."""
        from backend.serving.generation_settings import language_model_folder

        return language_model_folder(self.repo, run_id)

    def import_model(self, path: Path, *, name: str | None = None):
        """Import a model zip as a succeeded run, under this app's import limits."""
        from backend.sharing.export import import_limits, import_model

        return import_model(Path(path), self.repo, self.settings.runs_dir, name=name,
                            limits=import_limits(self.settings))

    # ---- table models (issue 15) ---------------------------------------------------------------
    def table_model_folder(self, run_id) -> Path:
        """The model folder of a succeeded run that reads table rows; UserError saying which run to pick."""
        run = self.repo.get_run(int(run_id))
        if run.status != "succeeded" or not run.output_dir:
            raise UserError(f"Run #{run.id} is {run.status}; only succeeded runs can predict.")
        if not get_task(run.task).reads_rows:
            raise UserError(f"Run #{run.id} is a {get_task(run.task).model_noun}, not a table model; pick a run "
                            "trained on a table.")
        return Path(run.output_dir)

    def table_form(self, run_id) -> list[dict]:
        """The input columns of a table model, with their kinds and observed ranges or values (for a form)."""
        from backend.tasks.tabular.serving import form_fields

        return form_fields(self.table_model_folder(run_id))

    def predict_rows(self, run_id, rows: list[dict]) -> list[dict]:
        """A table model's prediction for each row given as {column: value}."""
        folder = self.table_model_folder(run_id)
        return get_task(self.repo.get_run(int(run_id)).task).predict_rows(folder, rows)

    def predict_table(self, run_id, path: Path, out_dir: Path):
        """A table model's predictions for every row of a table file (a CSV written into `out_dir`)."""
        folder = self.table_model_folder(run_id)
        return get_task(self.repo.get_run(int(run_id)).task).predict_table(folder, Path(path), Path(out_dir))

    # ---- demo links ----------------------------------------------------------------------
    def list_demos(self, run_id: int | None = None) -> list[DemoRecord]:
        """Demo links (of one run when given)."""
        return self.repo.list_demos(None if run_id is None else int(run_id))

    def publish_demo(self, run_id: int, expires_in_hours: float | None = None) -> DemoRecord:
        """Create a demo link for a succeeded run."""
        from backend.sharing.demos import publish_demo

        return publish_demo(self.repo, int(run_id), expires_in_hours)

    def revoke_demo(self, demo_id: int, run_id: int | None = None) -> DemoRecord:
        """Turn a demo link off at once."""
        from backend.sharing.demos import revoke_demo

        return revoke_demo(self.repo, int(demo_id), run_id)

    def open_demo(self, token: str | None):
        """The run a demo token opens right now; DemoUnavailable otherwise."""
        from backend.sharing.demos import open_demo

        return open_demo(self.repo, token)

    def demo_takes_files(self, token: str | None) -> bool:
        """Whether a demo token's model reads files (so its page may upload one)."""
        from backend.sharing.demos import demo_takes_files

        return demo_takes_files(self.repo, token)

    def demo_predict(self, token: str | None, text: str | None) -> dict[str, float]:
        """Class probabilities of one text from a demo token's classifier."""
        from backend.sharing.demos import demo_predict

        return demo_predict(self.repo, token, text)

    def demo_predict_file(self, token: str | None, data: bytes | None, name: str = "the file") -> dict[str, float]:
        """Class probabilities of one file (an image) from a demo token's model that reads files."""
        from backend.sharing.demos import demo_predict_file

        return demo_predict_file(self.repo, token, data, name)

    def demo_stream(self, token: str | None, prompt: str | None, **options) -> Iterator[str]:
        """A demo token's language model continuing `prompt`, in pieces (options: see backend.sharing.demos)."""
        from backend.sharing.demos import demo_stream

        return demo_stream(self.repo, token, prompt, **options)


# ---- tasks ---------------------------------------------------------------------------------

def task_names() -> tuple[str, ...]:
    """The names of every registered task."""
    return tuple(TASKS)


def default_task() -> Task:
    """The task forms open on."""
    return TASKS[DEFAULT_TASK]


def task_of_run(run: RunRecord) -> Task:
    """The task a run (or an imported model) does."""
    return get_task(run.task)


def build_services(settings: Settings, *, train_fn=None) -> Services:
    """Create the home dir, migrate the DB to head and build the repository and job runner."""
    settings.ensure_dirs()
    try:
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
    except DatabaseUnavailable as exc:  # a wrong URL or a server that is down: say which and what to check
        raise UserError(str(exc)) from None
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
    """Human name of the device training will use: 'CPU', or the GPU's name (loads torch)."""
    from backend.training.devices import device_description as describe  # torch only when asked

    return describe(settings)
