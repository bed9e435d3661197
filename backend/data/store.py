"""Store a prepared dataset and read it back (no torch here): the generic half of an upload.

prepare_dataset() checks the options and hands the file to its task (`Task.prepare`: each task
package reads, picks columns, cleans, checks, splits, reports and hashes its own kind of data).
store_dataset() writes train/validation Parquet (temp folder, then rename) and the DB row; the same
content uploaded again reuses the stored dataset. ingest() does both for the CLI and the UI.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backend.data.reading import MAX_COLUMNS
from backend.errors import UserError
from backend.tasks.registry import DEFAULT_TASK, TASKS
from storage.records import DatasetRecord

__all__ = ["IngestOptions", "IngestOutcome", "PreparedDataset", "ingest", "ingest_summary", "load_split",
           "prepare_dataset", "store_dataset"]

log = logging.getLogger(__name__)

PART_BYTES = 16 << 20  # a split of more bytes than this is written as several files at once
# Each concurrent Parquet writer holds ~15-20 MB of its own (measured on 1M rows); two halve the
# write time on two cores, more would add to a big ingest's peak memory (target: under 3x the file).
MAX_WRITERS = 2
_STORE_LOCK = threading.Lock()  # one hash check + rename + DB insert at a time in this process


@dataclass(frozen=True)
class IngestOptions:
    """What the person chose on upload; None columns are guessed from names and content."""

    task: str = DEFAULT_TASK
    text_column: str | None = None
    label_column: str | None = None
    validation_fraction: float = 0.1  # used only without a separate validation file
    seed: int = 42
    name: str | None = None  # defaults to the file name without extension
    token_budget: int = 128  # texts longer than this (estimated tokens) are counted in the report
    max_columns: int = MAX_COLUMNS  # wider files are refused (Settings.max_columns)
    images_zip: str | None = None  # image classification: the zip a table's image paths point into
    # Tables (issue 15): columns the person leaves out of the inputs (label_column is the target).
    drop_columns: tuple[str, ...] = ()
    column_kinds: tuple[tuple[str, str], ...] = ()  # (column, kind) overrides of the detected kinds
    sheet: str | None = None  # the .xlsx sheet to read (None: the first)


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """A dataset ready to store: splits as DataFrames (text, label) plus its report and hash."""

    task: str
    name: str
    text_column: str
    label_column: str | None
    train: pd.DataFrame
    validation: pd.DataFrame
    labels: list[str]
    classes: dict[str, int]
    report: dict
    warnings: list[str]
    content_hash: str
    columns: list[dict] = field(default_factory=list)  # the source file's [{"name", "type"}]
    input_columns: list[str] = field(default_factory=list)  # what the task reads; [] = the text column (images: "image")

    @property
    def rows(self) -> int:
        return len(self.train) + len(self.validation)


@dataclass(frozen=True)
class IngestOutcome:
    """What ingest() did: the stored dataset, whether it already existed, and warnings to show."""

    dataset: DatasetRecord
    reused: bool
    warnings: list[str]


# --- preparing: the task does it ----------------------------------------------------------------

def prepare_dataset(path, options: IngestOptions, validation_path=None, *, max_bytes: int,
                    max_rows: int) -> PreparedDataset:
    """Read, check, split and describe a dataset file; UserError on anything blocking."""
    _check_options(options)
    path = Path(path)
    validation_path = Path(validation_path) if validation_path is not None else None
    return TASKS[options.task].prepare(path, options, validation_path, max_bytes, max_rows)


MAX_SEED = 2**32 - 1  # numpy's seed range; a larger one cannot seed the split


def _check_options(options: IngestOptions) -> None:
    if options.task not in TASKS:
        raise UserError(f'Unknown task "{options.task}". Choose one of: {", ".join(TASKS)}.')
    if not 0 < options.validation_fraction < 1:
        raise UserError(f"validation_fraction must be between 0 and 1 (for example 0.1), not "
                        f"{options.validation_fraction}.")
    if options.token_budget < 1:
        raise UserError(f"token_budget must be at least 1, not {options.token_budget}.")
    if not 0 <= options.seed <= MAX_SEED:
        raise UserError(f"seed must be a whole number from 0 to {MAX_SEED:,} (got {options.seed:.3g}).")


# --- storage -------------------------------------------------------------------------------------

def store_dataset(prepared: PreparedDataset, repo, datasets_dir) -> DatasetRecord:
    """Write the splits as Parquet and add the DB row; same content hash -> the existing record."""
    record, _ = _store(prepared, repo, Path(datasets_dir))
    return record


def _store(prepared: PreparedDataset, repo, datasets_dir: Path):
    """(record, reused). Writes to a temp folder, renames it into place, then inserts the row;
    a failure at any step removes what this call wrote and leaves stored datasets untouched."""
    with _STORE_LOCK:
        existing = repo.find_dataset_by_hash(prepared.content_hash)
        if existing is not None:
            return existing, True
        datasets_dir.mkdir(parents=True, exist_ok=True)
        final = (datasets_dir / prepared.content_hash[:16]).resolve()
        staging = Path(tempfile.mkdtemp(prefix=".ingest-", dir=datasets_dir))
        try:
            _write_splits({"train": prepared.train, "validation": prepared.validation}, staging)
            if final.exists():  # left by a crash between rename and insert: no record points at it
                shutil.rmtree(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            record = repo.add_dataset(
                name=prepared.name, task=prepared.task, content_hash=prepared.content_hash, path=str(final),
                text_column=prepared.text_column, label_column=prepared.label_column, rows=prepared.rows,
                train_rows=len(prepared.train), validation_rows=len(prepared.validation), labels=prepared.labels,
                classes=prepared.classes, report=prepared.report, columns=prepared.columns,
                input_columns=prepared.input_columns or [prepared.text_column], target_column=prepared.label_column)
        except BaseException:
            raced = _find_quietly(repo, prepared.content_hash)
            if raced is not None and Path(raced.path) == final:  # another process stored it meanwhile
                return raced, True
            shutil.rmtree(final, ignore_errors=True)
            raise
    log.info("stored dataset %d (%s) in %s", record.id, record.name, final)
    return record, False


def _write_splits(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write each split as Parquet, a big one as up to MAX_WRITERS part files written at once:
    pyarrow compresses a file on one thread, and compression is most of the time of a write."""
    writers = min(_cores(), MAX_WRITERS)
    # pyarrow's allocator keeps memory freed while preparing; handing it back first keeps the
    # writers' own buffers from adding to it (measured: the write's peak fell below preparing's).
    pa.default_memory_pool().release_unused()
    jobs = []
    for split, frame in frames.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        parts = max(1, min(writers, table.nbytes // PART_BYTES, table.num_rows))  # a corpus is one row
        rows = -(-table.num_rows // parts)  # rows per part, rounded up
        jobs += [(table.slice(index * rows, rows), _part_path(folder, split, index)) for index in range(parts)]
    if writers == 1:
        for table, path in jobs:
            pq.write_table(table, path)
        return
    jobs.sort(key=lambda job: -job[0].nbytes)  # biggest first, so the last to start is a small one
    with ThreadPoolExecutor(max_workers=writers - 1) as pool:  # this thread is the last writer
        others = [pool.submit(pq.write_table, table, path) for table, path in jobs[1:]]
        pq.write_table(*jobs[0])
        for done in others:
            done.result()  # re-raises a failed write


def _cores() -> int:
    """CPU cores this process may use (the affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _part_path(folder: Path, split: str, index: int) -> Path:
    """train.parquet, then train.1.parquet, train.2.parquet, ... (datasets stored before parts
    existed have just the first, so they load unchanged)."""
    return folder / (f"{split}.parquet" if index == 0 else f"{split}.{index}.parquet")


def _find_quietly(repo, digest: str):
    try:
        return repo.find_dataset_by_hash(digest)
    except Exception:  # the DB is failing: the caller re-raises the original error
        return None


def load_split(record: DatasetRecord, split: Literal["train", "validation"]) -> pd.DataFrame:
    """The stored train or validation split of a dataset as a DataFrame (text[, label])."""
    if split not in ("train", "validation"):
        raise UserError(f'Unknown split "{split}"; use "train" or "validation".')
    folder = Path(record.path)
    first = _part_path(folder, split, 0)
    if not first.is_file():
        raise UserError(f'The files of dataset "{record.name}" are missing ({first}). Upload the dataset again.')
    parts = [first]
    while (following := _part_path(folder, split, len(parts))).is_file():
        parts.append(following)
    frame = pd.read_parquet(parts if len(parts) > 1 else first)  # a list of parts is read in the order given
    expected = record.train_rows if split == "train" else record.validation_rows
    if len(frame) != expected:  # a part file lost or left over: never train on part of the data
        raise UserError(f'The files of dataset "{record.name}" are incomplete ({len(frame):,} {split} rows in '
                        f"{folder}, {expected:,} stored). Upload the dataset again.")
    return frame


# --- one call for the CLI and the UI -------------------------------------------------------------

def ingest(path, options: IngestOptions, *, validation_path=None, settings, repo) -> IngestOutcome:
    """Prepare and store a dataset file; reuses the stored dataset when the content is the same."""
    options = replace(options, max_columns=settings.max_columns)
    prepared = prepare_dataset(path, options, validation_path, max_bytes=settings.max_upload_bytes,
                               max_rows=settings.max_rows)
    record, reused = _store(prepared, repo, Path(settings.datasets_dir))
    warnings = list(prepared.warnings)
    if reused:
        warnings.append(f'This data was uploaded before as dataset {record.id} ("{record.name}"); '
                        "that dataset is reused.")
    return IngestOutcome(dataset=record, reused=reused, warnings=warnings)


def ingest_summary(outcome: IngestOutcome) -> dict:
    """The JSON summary the CLI prints after an ingest."""
    record = outcome.dataset
    return {"dataset_id": record.id, "name": record.name, "task": record.task, "rows": record.rows,
            "train_rows": record.train_rows, "validation_rows": record.validation_rows,
            "text_column": record.text_column, "label_column": record.label_column, "columns": list(record.columns),
            "classes": dict(record.classes), "labels": list(record.labels), "warnings": list(outcome.warnings),
            "reused": outcome.reused}


def delete_dataset(repo, dataset_id: int) -> None:
    """Delete a dataset's row, then its files; refused (InUse) while runs use it, so nothing is lost."""
    record = repo.get_dataset(dataset_id)
    repo.delete_dataset(dataset_id)  # raises InUse before anything is removed
    shutil.rmtree(record.path, ignore_errors=True)
