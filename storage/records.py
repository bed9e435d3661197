"""Plain, immutable records returned by the repository: no live ORM objects leave storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from backend.config import TrainConfig


@dataclass(frozen=True)
class DatasetRecord:
    """A stored, validated dataset; `path` is the folder holding train/validation Parquet files."""

    id: int
    name: str
    task: str
    content_hash: str
    path: str
    text_column: str | None  # None: a dataset without a text column
    label_column: str | None
    rows: int
    train_rows: int
    validation_rows: int
    labels: list[str] = field(default_factory=list)  # label id i is labels[i]
    classes: dict[str, int] = field(default_factory=dict)  # label -> count over all rows
    report: dict = field(default_factory=dict)
    created_at: datetime | None = None
    columns: list[dict] = field(default_factory=list)  # [{"name": ..., "type": ...}] of the source file
    input_columns: list[str] = field(default_factory=list)  # what the task reads
    target_column: str | None = None  # what the task predicts (None: nothing, e.g. text generation)


@dataclass(frozen=True)
class RunRecord:
    """One training run: its config, lifecycle times, status and final metrics."""

    id: int
    name: str
    dataset_id: int | None
    task: str
    template: str
    status: str
    config_json: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    error: str | None = None
    output_dir: str | None = None
    metrics: dict = field(default_factory=dict)
    progress: float = 0.0
    imported_from: str | None = None  # file name of an imported model; such a run has no dataset
    worker_pid: int | None = None  # the process training it (see storage.models.Run)
    worker_started: float | None = None  # that process's start time, seconds since the epoch
    worker_host: str | None = None
    worker_gpus: str | None = None  # "0,1"; "" on the CPU
    worker_port: int | None = None
    gpu_request: str | None = None  # "all", "one" or "0,2": what the run asked for; None = the app's default

    @property
    def config(self) -> TrainConfig:
        """The run's TrainConfig, parsed from the stored JSON."""
        return TrainConfig.model_validate_json(self.config_json)


@dataclass(frozen=True)
class MetricRecord:
    """One appended metric value of a run."""

    run_id: int
    key: str
    step: int
    value: float
    time: datetime | None = None


@dataclass(frozen=True)
class ArtifactRecord:
    """A file or folder a run produced (model, checkpoint, export)."""

    id: int
    run_id: int
    kind: str
    path: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class DemoRecord:
    """A public demo link of one run; `token` is the secret part of its URL."""

    id: int
    run_id: int
    token: str
    created_at: datetime | None = None
    expires_at: datetime | None = None  # None: never expires
    revoked_at: datetime | None = None  # None: not revoked

    def status(self, now: datetime) -> str:
        """'revoked', 'expired' or 'active' at `now` (naive UTC, like every stored time)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
