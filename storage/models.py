"""SQLAlchemy tables: datasets, runs, append-only metrics, artifacts, demo links. Times are UTC."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now in UTC, as the naive datetime every time column stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)  # stored naive, always UTC


class Base(DeclarativeBase):
    """Metadata of every Modelsmith table (Alembic compares migrations against it)."""


class Dataset(Base):
    """A stored dataset; labels, class counts and the validation report are JSON text."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    path: Mapped[str] = mapped_column(Text)
    text_column: Mapped[str | None] = mapped_column(String(200))  # None for a dataset without text (0004)
    label_column: Mapped[str | None] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    train_rows: Mapped[int] = mapped_column(Integer)
    validation_rows: Mapped[int] = mapped_column(Integer)
    labels_json: Mapped[str] = mapped_column(Text, default="[]")
    classes_json: Mapped[str] = mapped_column(Text, default="{}")
    report_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Since 0004: the source file's columns as [{"name", "type"}] (integer, float, boolean,
    # datetime, string), which of them the task reads as inputs, and the one it predicts.
    columns_json: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    input_columns_json: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    target_column: Mapped[str | None] = mapped_column(String(200))


class Run(Base):
    """One training run and its lifecycle; `config_json` is the TrainConfig verbatim."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # No ON DELETE action: the database refuses to drop a dataset that runs use (and the repository
    # says so first with InUse); a run's config must stay reproducible.
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    config_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    output_dir: Mapped[str | None] = mapped_column(Text)
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # 0..1, since 0002
    imported_from: Mapped[str | None] = mapped_column(Text)  # file name of an imported model (0004)
    # Since 0005: the process training the run (the `accelerate launch` process, leader of its
    # group), so any reader can tell a live run from one whose process died.
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    worker_started: Mapped[float | None] = mapped_column(Float)  # the process's start, seconds since the epoch
    worker_host: Mapped[str | None] = mapped_column(String(255))
    worker_gpus: Mapped[str | None] = mapped_column(String(200))  # CUDA_VISIBLE_DEVICES of the run; "" on the CPU
    worker_port: Mapped[int | None] = mapped_column(Integer)  # the launcher's --main_process_port
    # Since 0006: the GPUs the run asked for ("all", "one", or ids "0,2"); None = the app's default.
    gpu_request: Mapped[str | None] = mapped_column(String(200))


class Metric(Base):
    """Append-only: one row per (run, key, step) value; read back ordered by step."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Artifact(Base):
    """A file or folder a run produced (model, checkpoint, export); since migration 0002."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Demo(Base):
    """A public demo link of one run: an unguessable token, optionally expiring; since migration 0003."""

    __tablename__ = "demos"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: never expires
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)  # set once: the link is off for good
