"""Turn an uploaded table into a stored tabular dataset: read, pick target and inputs, check, split, report.

The ingest entry of the two tabular tasks (`Task.prepare`). What the person chose arrives in
`backend.data.store.IngestOptions`: `label_column` is the target (CLI `--target`), `drop_columns`
the columns to leave out; everything else is suggested from the table (backend.tasks.tabular.columns).
The stored splits keep the input columns and the target with their types (Parquet); the column
kinds go into the dataset's `columns` (so training rebuilds the same TableSpec), the validation
report into its `report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from backend.data.columns import resolve_column
from backend.data.store import PreparedDataset
from backend.errors import UserError, listing, shorten
from backend.tasks.tabular.columns import (INPUT_KINDS, TableSchema, TableSpec, TabularTask, default_spec,
                                           infer_schema, suggest_task)
from backend.tasks.tabular.preprocessing import category_keys, to_numbers
from backend.tasks.tabular.reading import read_table
from backend.tasks.tabular.splitting import split_table
from backend.tasks.tabular.validation import count_overlap, validate_table

log = logging.getLogger(__name__)

HASH_VERSION = 1
MAX_ERRORS_SHOWN = 5  # a classification target with hundreds of one-row classes must not give hundreds of lines


def prepare_classification(path: Path, options, validation_path: Path | None, max_bytes: int,
                           max_rows: int) -> PreparedDataset:
    """A table whose target is a class (tabular-classification)."""
    return prepare_table(path, options, validation_path, max_bytes, max_rows, kind="classification")


def prepare_regression(path: Path, options, validation_path: Path | None, max_bytes: int,
                       max_rows: int) -> PreparedDataset:
    """A table whose target is a number (tabular-regression)."""
    return prepare_table(path, options, validation_path, max_bytes, max_rows, kind="regression")


def prepare_table(path: Path, options, validation_path: Path | None, max_bytes: int, max_rows: int, *,
                  kind: TabularTask) -> PreparedDataset:
    """Read, check, split and describe a table; UserError on anything that blocks training."""
    frame = _read(path, max_bytes, max_rows, options.max_columns, getattr(options, "sheet", None))
    schema = infer_schema(frame)
    spec = choose_spec(frame, schema, options, kind, path.name)
    report = validate_table(frame, spec)
    if not report.ok:
        raise UserError(_blocking(report.errors, path.name))
    if validation_path is not None:
        validation = _read(validation_path, max_bytes, max_rows, options.max_columns, getattr(options, "sheet", None))
        absent = [c for c in [spec.target, *spec.inputs] if c not in validation.columns]
        if absent:
            raise UserError(f"The validation file {validation_path.name} lacks the columns {listing(absent)}; "
                            "it needs the same columns as the training file.")
        train = frame[frame[spec.target].notna()].reset_index(drop=True)
        validation = validation[validation[spec.target].notna()].reset_index(drop=True)
        if validation.empty:
            raise UserError(f"No row of the validation file {validation_path.name} has a {spec.target!r} value.")
    else:
        train, validation = split_table(frame, spec, options.validation_fraction, options.seed)
    columns = [spec.target, *spec.inputs]
    train, validation = _storable(train[columns], spec), _storable(validation[columns], spec)
    overlap = count_overlap(train, validation, list(spec.inputs))
    warnings = list(report.warnings)
    if overlap:
        warnings.append(f"{overlap} validation rows also occur in training (same inputs): validation scores "
                        "are optimistic.")
    warnings += _suggestion_notes(schema, spec)
    report_dict = _report_dict(report, schema, spec, path, validation_path, options, len(train), len(validation),
                               overlap, warnings)
    labels = sorted(category_keys(train[spec.target], "categorical").dropna().unique()) \
        if kind == "classification" else []
    classes = dict(report.class_counts) if kind == "classification" else {}
    kinds = {c.name: c.kind for c in schema.columns}
    digest = _content_hash({"task": options.task, "spec": spec.model_dump(),
                            "split": "file" if validation_path else [options.validation_fraction, options.seed]},
                           train, validation)
    return PreparedDataset(
        task=options.task, name=options.name or path.stem, text_column=None, label_column=spec.target,
        train=train, validation=validation, labels=labels, classes=classes, report=report_dict, warnings=warnings,
        content_hash=digest, input_columns=list(spec.inputs),
        columns=[{"name": c.name, "type": c.dtype, "kind": spec.inputs.get(c.name, kinds[c.name]),
                  "role": "target" if c.name == spec.target else "input" if c.name in spec.inputs else "dropped"}
                 for c in schema.columns])


def _read(path: Path, max_bytes: int, max_rows: int, max_columns: int, sheet: str | None = None) -> pd.DataFrame:
    path = Path(path)
    if path.is_file() and path.stat().st_size > max_bytes:
        raise UserError(f"{path.name} is {path.stat().st_size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
                        "Upload fewer rows or columns (or raise MODELSMITH_MAX_UPLOAD_MB).")
    frame = read_table(path, sheet=sheet if path.suffix.lower() == ".xlsx" else None)
    if len(frame) > max_rows:
        raise UserError(f"{path.name} has {len(frame):,} rows; the limit is {max_rows:,}. Upload a sample of the "
                        "rows (or raise MODELSMITH_MAX_ROWS).")
    if len(frame.columns) > max_columns:
        raise UserError(f"{path.name} has {len(frame.columns):,} columns; the limit is {max_columns:,}. "
                        "Leave out columns the model does not need.")
    return frame


def choose_spec(frame: pd.DataFrame, schema: TableSchema, options, kind: TabularTask, file_name: str) -> TableSpec:
    """The target the person named (else the suggested one) and every suggested input not dropped."""
    columns = [str(c) for c in frame.columns]
    target = (resolve_column(options.label_column, columns, "target", file_name) if options.label_column
              else schema.suggested_target)
    dropped = {resolve_column(name, columns, "dropped", file_name) for name in getattr(options, "drop_columns", ())}
    if target in dropped:
        raise UserError(f"{shorten(target)!r} is the target: it cannot also be dropped. Pick another target, "
                        "or keep it.")
    target_info = schema.column(target)
    if kind == "classification" and target_info.kind == "numeric" and suggest_task(frame[target]) == "regression":
        raise UserError(f"The target {shorten(target)!r} holds numbers with {target_info.distinct:,} different values: "
                        "a classifier would need each value as a class. Predict it as a number with the "
                        "tabular-regression task, or pick another target column.")
    spec = default_spec(schema, target, kind)
    inputs = {name: column_kind for name, column_kind in spec.inputs.items() if name not in dropped}
    for name, column_kind in getattr(options, "column_kinds", ()):
        column = resolve_column(name, columns, "kind override", file_name)
        if column_kind not in INPUT_KINDS:
            raise UserError(f"{shorten(column_kind)!r} is not a column kind; use one of {', '.join(INPUT_KINDS)} "
                            f"(for {shorten(column)!r}).")
        if column == target or column in dropped:
            raise UserError(f"{shorten(column)!r} is {'the target' if column == target else 'left out'}: it takes "
                            "no input kind. Remove the kind override, or keep the column as an input.")
        inputs[column] = column_kind   # also brings back a column suggested for leaving out (an id, free text)
    if not inputs:
        raise UserError(f"No input column is left in {file_name}: every other column was dropped or is an "
                        f"identifier, constant or free text ({listing(columns)}). Keep at least one input column.")
    return TableSpec(target=target, task=kind, inputs=inputs)


def _blocking(errors: list[str], file_name: str) -> str:
    more = f" ({len(errors) - MAX_ERRORS_SHOWN} more problems like these.)" if len(errors) > MAX_ERRORS_SHOWN else ""
    return f"{file_name} cannot be trained on yet: " + " ".join(errors[:MAX_ERRORS_SHOWN]) + more


def _storable(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Columns Parquet stores with one type each: a spreadsheet column may mix numbers and words."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        role = spec.task if name == spec.target else spec.inputs.get(name)
        if role in ("numeric", "regression"):
            out[name] = to_numbers(column)
        elif column.dtype == object:
            out[name] = column.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                   else str(v)).astype("string")
        else:
            out[name] = column
    return pd.DataFrame(out).reset_index(drop=True)


def _suggestion_notes(schema: TableSchema, spec: TableSpec) -> list[str]:
    notes = [f"Column {note}" for note in schema.notes]
    if spec.target == schema.suggested_target and spec.task != schema.suggested_task:
        notes.append(f"The target {spec.target!r} looks like a {schema.suggested_task} target; it is trained as "
                     f"{spec.task} as asked.")
    return notes


def _report_dict(report, schema: TableSchema, spec: TableSpec, path: Path, validation_path: Path | None, options,
                 train_rows: int, validation_rows: int, overlap: int, warnings: list[str]) -> dict:
    """The report as plain JSON for the dataset row: what the Data tab and the Train tab show."""
    data = asdict(report)
    data.pop("errors", None)
    data.update({"source": path.name, "format": path.suffix.lower().lstrip("."), "task": options.task,
                 "target_column": spec.target, "table_task": spec.task, "inputs": dict(spec.inputs),
                 "dropped_columns": [c.name for c in schema.columns if c.name not in spec.inputs
                                     and c.name != spec.target],
                 "suggested_target": schema.suggested_target, "suggested_task": schema.suggested_task,
                 "train_rows": train_rows, "validation_rows": validation_rows,
                 "validation_source": "file" if validation_path else "split",
                 "validation_fraction": options.validation_fraction, "seed": options.seed,
                 "train_validation_overlap": overlap, "warnings": warnings})
    return json.loads(json.dumps(data, default=str))   # numpy numbers and the like as plain JSON


def _content_hash(header: dict, *frames: pd.DataFrame) -> str:
    digest = hashlib.sha256(json.dumps({"version": HASH_VERSION, **header}, sort_keys=True, default=str).encode())
    for frame in frames:
        digest.update(b"\x00split" + json.dumps([str(c) for c in frame.columns]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def table_spec(dataset) -> TableSpec:
    """The TableSpec a stored tabular dataset was prepared with (its target, inputs and their kinds)."""
    kinds = {c["name"]: c.get("kind") for c in dataset.columns}
    task = dataset.report.get("table_task") or ("classification" if dataset.labels else "regression")
    return TableSpec(target=dataset.target_column, task=task,
                     inputs={name: kinds.get(name) or "numeric" for name in dataset.input_columns})
