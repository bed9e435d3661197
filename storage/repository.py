"""The only code that talks SQL. One short Session per call; returns plain records."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import FINISHED_STATUSES, RUN_STATUSES, TrainConfig
from storage.database import READ_ONLY
from storage.models import Artifact, Dataset, Demo, Metric, Run, utcnow
from storage.records import ArtifactRecord, DatasetRecord, DemoRecord, MetricRecord, RunRecord

log = logging.getLogger(__name__)


class NotFound(Exception):
    """A dataset or run id that does not exist."""


class InUse(Exception):
    """A dataset that runs still use, so it cannot be deleted."""


def _to_json(value: object) -> str:
    return json.dumps(value, default=_plain)


def _plain(value: object) -> object:
    # numpy and torch scalars or arrays that slip into metrics or reports become plain numbers/lists
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _text(value: str | None, limit: int | None = None) -> str | None:
    """A string as every database stores it: no NUL characters, at most `limit` characters.

    SQLite keeps both; PostgreSQL refuses a NUL in text and a value longer than its VARCHAR, so
    a column header or an error message taken from user data would make the write itself fail.
    """
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value[:limit] if limit else value


NAME_LENGTH = 200  # the VARCHAR(200) of names and column names


def _dataset_record(row: Dataset) -> DatasetRecord:
    return DatasetRecord(
        id=row.id, name=row.name, task=row.task, content_hash=row.content_hash, path=row.path,
        text_column=row.text_column, label_column=row.label_column, rows=row.rows, train_rows=row.train_rows,
        validation_rows=row.validation_rows, labels=json.loads(row.labels_json), classes=json.loads(row.classes_json),
        report=json.loads(row.report_json), created_at=row.created_at, columns=json.loads(row.columns_json or "[]"),
        input_columns=json.loads(row.input_columns_json or "[]"), target_column=row.target_column)


def _run_record(row: Run) -> RunRecord:
    return RunRecord(
        id=row.id, name=row.name, dataset_id=row.dataset_id, task=row.task, template=row.template,
        status=row.status, config_json=row.config_json, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, heartbeat_at=row.heartbeat_at, error=row.error, output_dir=row.output_dir,
        metrics=json.loads(row.metrics_json or "{}"), progress=row.progress or 0.0, imported_from=row.imported_from,
        worker_pid=row.worker_pid, worker_started=row.worker_started, worker_host=row.worker_host,
        worker_gpus=row.worker_gpus, worker_port=row.worker_port, gpu_request=row.gpu_request)


def _metric_record(row: Metric) -> MetricRecord:
    return MetricRecord(run_id=row.run_id, key=row.key, step=row.step, value=row.value, time=row.time)


def _artifact_record(row: Artifact) -> ArtifactRecord:
    return ArtifactRecord(id=row.id, run_id=row.run_id, kind=row.kind, path=row.path, created_at=row.created_at)


def _demo_record(row: Demo) -> DemoRecord:
    return DemoRecord(id=row.id, run_id=row.run_id, token=row.token, created_at=row.created_at,
                      expires_at=row.expires_at, revoked_at=row.revoked_at)


def _run_missing(run_id: int) -> NotFound:
    return NotFound(f"Run {run_id} does not exist. Pick one from the runs list.")


def _check_status(status: str, allowed: tuple[str, ...]) -> None:
    if status not in allowed:
        raise ValueError(f"'{status}' is not a run status here. Use one of: {', '.join(allowed)}.")


# Ids are INTEGER columns: 64-bit on SQLite but 32-bit on PostgreSQL, where a larger number is an
# "integer out of range" error rather than no row. No row gets near 2**31 - 1 on either.
MAX_ID = 2**31 - 1


def _storable_id(value) -> bool:
    """True for an id a row can have; a huge or negative one (10**30) is simply not found, not an OverflowError."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return True  # not a number at all: the database answers as it always did
    return 0 <= number <= MAX_ID


class Repository:
    """Datasets, runs, metrics and artifacts; every method is one unit of work in its own Session.

    Writes use `sessions.begin()` (commit on exit, rollback on error); reads use `_reading()`.
    Every method returns frozen records from storage.records, never live ORM objects, so callers
    in any thread may keep them. Times are naive datetimes in UTC.
    """

    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        # Read-only: on SQLite a deferred BEGIN, so the UI's polling never queues behind a writer.
        with self._sessions() as session:
            session.connection(execution_options=READ_ONLY)
            yield session

    # ---- datasets ------------------------------------------------------------------------
    def add_dataset(self, *, name: str, task: str, content_hash: str, path: str, text_column: str | None,
                    label_column: str | None, rows: int, train_rows: int, validation_rows: int,
                    labels: list[str], classes: dict[str, int], report: dict, columns: list[dict] | None = None,
                    input_columns: list[str] | None = None, target_column: str | None = None) -> DatasetRecord:
        """Store a dataset's metadata (its files are already on disk).

        `input_columns` defaults to the text column and `target_column` to the label column.
        """
        if input_columns is None:
            input_columns = [text_column] if text_column else []
        with self._sessions.begin() as session:
            row = Dataset(name=_text(name, NAME_LENGTH), task=task, content_hash=content_hash, path=_text(path),
                          text_column=_text(text_column, NAME_LENGTH),
                          label_column=_text(label_column, NAME_LENGTH), rows=rows, train_rows=train_rows,
                          validation_rows=validation_rows, labels_json=_to_json(list(labels)),
                          classes_json=_to_json(dict(classes)), report_json=_to_json(report),
                          columns_json=_to_json(list(columns or [])), input_columns_json=_to_json(list(input_columns)),
                          target_column=_text(target_column if target_column is not None else label_column,
                                              NAME_LENGTH))
            session.add(row)
            session.flush()
            return _dataset_record(row)

    def find_dataset_by_hash(self, content_hash: str) -> DatasetRecord | None:
        """The dataset stored with this content hash, if any."""
        with self._reading() as session:
            row = session.scalar(select(Dataset).where(Dataset.content_hash == content_hash))
            return _dataset_record(row) if row else None

    def get_dataset(self, dataset_id: int) -> DatasetRecord:
        """One dataset; NotFound if the id does not exist."""
        with self._reading() as session:
            return _dataset_record(self._dataset_row(session, dataset_id))

    def list_datasets(self) -> list[DatasetRecord]:
        """All datasets, newest first."""
        with self._reading() as session:
            return [_dataset_record(r) for r in session.scalars(select(Dataset).order_by(Dataset.id.desc()))]

    def rename_dataset(self, dataset_id: int, name: str) -> None:
        """Give a dataset a new display name."""
        name = _text(name).strip()
        if not name:
            raise ValueError("A dataset name cannot be empty. Type a name with at least one letter.")
        with self._sessions.begin() as session:
            self._dataset_row(session, dataset_id).name = name[:NAME_LENGTH]

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a dataset's row; InUse while runs reference it."""
        with self._sessions.begin() as session:
            row = self._dataset_row(session, dataset_id)
            used_by = session.scalars(select(Run.id).where(Run.dataset_id == dataset_id)).all()
            if used_by:
                raise InUse(f"Dataset {dataset_id} ('{row.name}') is used by run(s) {', '.join(map(str, used_by))}. "
                            "Delete those runs first, or keep the dataset.")
            session.delete(row)

    @staticmethod
    def _dataset_row(session: Session, dataset_id: int | None) -> Dataset:
        if dataset_id is None:  # the config of an imported model names no dataset
            raise NotFound("No dataset was given (an imported model has none here). Pick a stored dataset.")
        row = session.get(Dataset, dataset_id) if _storable_id(dataset_id) else None
        if row is None:
            raise NotFound(f"Dataset {dataset_id} does not exist. Pick one from the list of stored datasets.")
        return row

    # ---- runs ----------------------------------------------------------------------------
    def create_run(self, config: TrainConfig, *, name: str | None = None, gpu_request: str | None = None) -> int:
        """Queue a new run for `config` (on the GPUs `gpu_request` names, else the default); returns its id."""
        with self._sessions.begin() as session:
            self._dataset_row(session, config.dataset_id)
            run = Run(name=_text(name or config.name).strip()[:NAME_LENGTH], dataset_id=config.dataset_id,
                      task=config.task, template=config.template.kind, status="queued",
                      config_json=config.model_dump_json(), metrics_json="{}", progress=0.0,
                      gpu_request=_text(gpu_request, 200) if gpu_request else None)
            session.add(run)
            session.flush()
            if not run.name:
                run.name = f"{config.template.kind}-{run.id}"
            return run.id

    def get_run(self, run_id: int) -> RunRecord:
        """One run; NotFound if the id does not exist."""
        with self._reading() as session:
            return _run_record(self._run_row(session, run_id))

    def list_runs(self, status: str | None = None) -> list[RunRecord]:
        """All runs (or those with `status`; None or "" means all), newest first."""
        query = select(Run).order_by(Run.id.desc())
        if status:
            _check_status(status, RUN_STATUSES)
            query = query.where(Run.status == status)
        with self._reading() as session:
            return [_run_record(r) for r in session.scalars(query)]

    def queued_runs(self) -> list[RunRecord]:
        """Runs waiting for a worker, oldest first (FIFO)."""
        with self._reading() as session:
            rows = session.scalars(select(Run).where(Run.status == "queued").order_by(Run.id))
            return [_run_record(r) for r in rows]

    def count_queued(self) -> int:
        """How many runs wait in the queue."""
        with self._reading() as session:
            return session.scalar(select(func.count()).select_from(Run).where(Run.status == "queued")) or 0

    def mark_running(self, run_id: int, output_dir: str) -> None:
        """A worker took the run: status running, start time, first heartbeat."""
        now = utcnow()
        with self._sessions.begin() as session:
            run = self._run_row(session, run_id)
            run.status, run.output_dir, run.heartbeat_at = "running", output_dir, now
            run.started_at = run.started_at or now
            run.error = None

    def claim(self, run_id: int, output_dir: str, **worker) -> bool:
        """Take a queued run for this process (as mark_running); False if another process or thread took it first.

        One conditional UPDATE: on PostgreSQL a second claimant waits for the first one's row lock,
        then finds the status changed; on SQLite BEGIN IMMEDIATE queues writers. Either way exactly
        one of several apps or workers sharing the database wins. `worker` (pid, started, host) names
        the process that now owns the run (see set_worker), so a reader never sees it running unowned.
        """
        owner = {f"worker_{key}": value for key, value in worker.items()}
        now = utcnow()
        with self._sessions.begin() as session:
            claimed = session.execute(
                update(Run).where(Run.id == run_id, Run.status == "queued")
                .values(status="running", output_dir=output_dir, heartbeat_at=now, error=None,
                        started_at=func.coalesce(Run.started_at, now), **owner))
            return claimed.rowcount == 1

    def set_worker(self, run_id: int, *, pid: int, started: float | None, host: str, gpus: str = "",
                   port: int | None = None) -> None:
        """Record the process that trains the run (pid, its start time, host, GPUs, rendezvous port)."""
        with self._sessions.begin() as session:
            session.execute(update(Run).where(Run.id == run_id).values(
                worker_pid=pid, worker_started=started, worker_host=_text(host, 255), worker_gpus=_text(gpus, 200),
                worker_port=port))

    def running_runs(self) -> list[RunRecord]:
        """Runs whose status is `running`, oldest first."""
        with self._reading() as session:
            return [_run_record(r) for r in session.scalars(select(Run).where(Run.status == "running").order_by(Run.id))]

    def mark_interrupted(self, run_id: int, error: str) -> bool:
        """A `running` run whose process is gone becomes `interrupted`; False if it had already ended."""
        with self._sessions.begin() as session:
            changed = session.execute(update(Run).where(Run.id == run_id, Run.status == "running")
                                      .values(status="interrupted", finished_at=utcnow(), error=_text(error)))
            return changed.rowcount == 1

    def cancel_queued(self, run_id: int) -> bool:
        """Cancel a run that is still queued; False if a worker (in any process) has taken it meanwhile."""
        with self._sessions.begin() as session:
            cancelled = session.execute(update(Run).where(Run.id == run_id, Run.status == "queued")
                                        .values(status="cancelled", finished_at=utcnow()))
            return cancelled.rowcount == 1

    def heartbeat(self, run_id: int, progress: float | None = None) -> None:
        """The run is alive (and, optionally, this far along: 0..1)."""
        values: dict = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, float(progress)))
        with self._sessions.begin() as session:
            session.execute(update(Run).where(Run.id == run_id).values(**values))

    def finish(self, run_id: int, status: str, *, metrics: dict | None = None, error: str | None = None) -> None:
        """End a run with a final status, its best metrics or its error."""
        _check_status(status, FINISHED_STATUSES)
        with self._sessions.begin() as session:
            run = self._run_row(session, run_id)
            run.status, run.finished_at, run.error = status, utcnow(), _text(error)
            if metrics is not None:
                run.metrics_json = _to_json(metrics)
            if status == "succeeded":
                run.progress = 1.0

    def requeue(self, run_id: int, config: TrainConfig | None = None) -> None:
        """Put a run back in the queue (resume), optionally with a new config; keeps its output_dir."""
        with self._sessions.begin() as session:
            run = self._run_row(session, run_id)
            run.status, run.error, run.finished_at = "queued", None, None
            if config is not None:
                if config.dataset_id != run.dataset_id:
                    self._dataset_row(session, config.dataset_id)
                # The derived columns follow the config, so filters and the runs table stay true.
                run.config_json, run.dataset_id = config.model_dump_json(), config.dataset_id
                run.task, run.template = config.task, config.template.kind

    def mark_interrupted_stale(self, older_than: timedelta | None = None) -> list[int]:
        """Runs left `running` become `interrupted`: all, or those whose heartbeat is older than `older_than`."""
        query = select(Run).where(Run.status == "running")
        if older_than is not None:
            cutoff = utcnow() - older_than
            query = query.where((Run.heartbeat_at.is_(None)) | (Run.heartbeat_at < cutoff))
        with self._sessions.begin() as session:
            rows = session.scalars(query.order_by(Run.id)).all()
            now = utcnow()
            for run in rows:
                run.status, run.finished_at = "interrupted", now
                run.error = ("The app stopped while this run was training. "
                             "Resume it to continue from its last checkpoint.")
            return [run.id for run in rows]

    def add_imported_run(self, *, name: str, task: str, template: str, config_json: str, metrics: dict,
                         place: Callable[[int], str], imported_from: str | None = None) -> RunRecord:
        """Record an imported model as a succeeded run with no dataset.

        `place(run_id)` moves the model files into their final folder and returns its path; it runs
        inside the transaction, so if it raises, no run row is left behind.
        """
        now = utcnow()
        with self._sessions.begin() as session:
            run = Run(name=_text(name).strip()[:NAME_LENGTH], dataset_id=None, task=task, template=template,
                      status="succeeded", config_json=config_json, metrics_json=_to_json(metrics), progress=1.0,
                      started_at=now, finished_at=now, imported_from=_text(imported_from or "", 500) or None)
            session.add(run)
            session.flush()
            if not run.name:
                run.name = f"imported-{run.id}"
            run.output_dir = place(run.id)
            return _run_record(run)

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its metrics and artifact rows (files are the caller's job)."""
        with self._sessions.begin() as session:
            session.delete(self._run_row(session, run_id))  # metrics/artifacts/demos cascade

    @staticmethod
    def _run_row(session: Session, run_id: int) -> Run:
        row = session.get(Run, run_id) if _storable_id(run_id) else None
        if row is None:
            raise _run_missing(run_id)
        return row

    # ---- metrics ---------------------------------------------------------------------------
    def add_metrics(self, run_id: int, step: int, values: dict[str, float]) -> None:
        """Append one value per key at `step`, in one transaction; NotFound if the run is gone.

        Appending, not replacing, keeps a step trained twice visible (a resume that went back too
        far); the job runner drops the rows past a checkpoint before resuming from it. NaN and
        infinite values (a diverging loss) are left out: SQLite would store NaN as NULL and refuse
        the row, PostgreSQL would keep a value no JSON reader accepts.
        """
        finite = {key: float(value) for key, value in values.items() if math.isfinite(float(value))}
        if len(finite) < len(values):
            log.warning("run %d step %s: not storing non-finite %s", run_id, step,
                        sorted(set(values) - set(finite)))
        values = finite
        if not values:
            return
        now = utcnow()
        try:
            with self._sessions.begin() as session:
                session.add_all([Metric(run_id=run_id, key=key, step=int(step), value=float(value), time=now)
                                 for key, value in values.items()])
        except IntegrityError as exc:  # the foreign key: the run was deleted (or never existed)
            raise _run_missing(run_id) from exc

    def delete_metrics_after(self, run_id: int, step: int) -> int:
        """Drop a run's metric rows past `step` (a resume goes back to its checkpoint); returns how many."""
        with self._sessions.begin() as session:
            return session.execute(delete(Metric).where(Metric.run_id == run_id, Metric.step > int(step))).rowcount

    def get_metrics(self, run_id: int, keys: list[str] | None = None) -> list[MetricRecord]:
        """A run's metric values ordered by step (then insertion), optionally only `keys`."""
        query = select(Metric).where(Metric.run_id == run_id).order_by(Metric.step, Metric.id)
        if keys:
            query = query.where(Metric.key.in_(keys))
        with self._reading() as session:
            return [_metric_record(m) for m in session.scalars(query)]

    def latest_metrics(self, run_id: int) -> dict[str, float]:
        """The last value of each key (highest step; the later write on a tie); {} for no metrics."""
        # One row per key, picked in SQL: a long run has many thousands of rows and the UI polls this.
        rank = func.row_number().over(partition_by=Metric.key, order_by=(Metric.step.desc(), Metric.id.desc()))
        ranked = select(Metric.key, Metric.value, rank.label("rank")).where(Metric.run_id == run_id).subquery()
        with self._reading() as session:
            rows = session.execute(select(ranked.c.key, ranked.c.value).where(ranked.c.rank == 1))
            return {key: value for key, value in rows}

    # ---- artifacts -------------------------------------------------------------------------
    def add_artifact(self, run_id: int, kind: str, path: str) -> None:
        """Record a file or folder a run produced; NotFound if the run is gone."""
        try:
            with self._sessions.begin() as session:
                session.add(Artifact(run_id=run_id, kind=kind, path=path))
        except IntegrityError as exc:  # the foreign key: the run was deleted (or never existed)
            raise _run_missing(run_id) from exc

    def list_artifacts(self, run_id: int) -> list[ArtifactRecord]:
        """A run's artifacts, oldest first."""
        with self._reading() as session:
            rows = session.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id))
            return [_artifact_record(a) for a in rows]

    # ---- demo links ------------------------------------------------------------------------
    def add_demo(self, run_id: int, token: str, expires_at: datetime | None = None) -> DemoRecord:
        """Store a demo link of a run; NotFound if the run is gone."""
        with self._sessions.begin() as session:
            self._run_row(session, run_id)
            row = Demo(run_id=run_id, token=token, expires_at=expires_at)
            session.add(row)
            session.flush()
            return _demo_record(row)

    def find_demo(self, token: str) -> DemoRecord | None:
        """The demo link with this token, if any (revoked and expired ones included)."""
        with self._reading() as session:
            row = session.scalar(select(Demo).where(Demo.token == token))
            return _demo_record(row) if row else None

    def get_demo(self, demo_id: int) -> DemoRecord:
        """One demo link; NotFound if the id does not exist."""
        with self._reading() as session:
            return _demo_record(self._demo_row(session, demo_id))

    def list_demos(self, run_id: int | None = None) -> list[DemoRecord]:
        """Demo links of one run (or of all runs), newest first."""
        query = select(Demo).order_by(Demo.id.desc())
        if run_id is not None:
            query = query.where(Demo.run_id == run_id)
        with self._reading() as session:
            return [_demo_record(row) for row in session.scalars(query)]

    def revoke_demo(self, demo_id: int) -> DemoRecord:
        """Turn a demo link off for good (a second revoke keeps the first time); NotFound if unknown."""
        with self._sessions.begin() as session:
            row = self._demo_row(session, demo_id)
            row.revoked_at = row.revoked_at or utcnow()
            return _demo_record(row)

    @staticmethod
    def _demo_row(session: Session, demo_id: int) -> Demo:
        row = session.get(Demo, demo_id) if _storable_id(demo_id) else None
        if row is None:
            raise NotFound(f"Demo link {demo_id} does not exist. Pick one from the run's list of demo links.")
        return row
