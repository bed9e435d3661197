"""The validation report of a table: what is in it, what looks wrong, and what blocks training.

Plain data (no UI): the Data tab renders it. Blocking errors say what to do; warnings (leakage,
duplicates, overlap, imbalance) let the user decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.errors import UserError
from backend.tasks.tabular.columns import ColumnInfo, TableSpec, describe_column
from backend.tasks.tabular.preprocessing import category_keys, to_numbers

log = logging.getLogger(__name__)

# A numeric column this correlated with a regression target is a copy of it in other units.
LEAK_CORRELATION = 0.999
# Leakage checks need enough rows that a perfect fit is no coincidence.
LEAK_MIN_ROWS = 20
# A class under this share of the rows is called out as rare.
RARE_CLASS_SHARE = 0.05


@dataclass(frozen=True)
class Leak:
    """An input column that gives the target away."""

    column: str
    reason: str


@dataclass
class ValidationReport:
    """Everything the Data tab shows about a table before training; `errors` block training."""

    rows: int
    columns: list[ColumnInfo]
    constant_columns: list[str] = field(default_factory=list)
    id_like_columns: list[str] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    duplicate_rows: int = 0
    conflicting_duplicate_rows: int = 0     # rows with the same inputs as another row but another target
    missing_target_rows: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)          # classification
    target_summary: dict[str, float] = field(default_factory=dict)      # regression
    train_validation_overlap: int | None = None    # validation rows whose inputs also occur in training
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing blocks training."""
        return not self.errors

    @property
    def missing_share(self) -> dict[str, float]:
        return {c.name: c.missing_share for c in self.columns}

    @property
    def cardinality(self) -> dict[str, int]:
        return {c.name: c.distinct for c in self.columns}


def validate_table(frame: pd.DataFrame, spec: TableSpec, validation: pd.DataFrame | None = None) -> ValidationReport:
    """Build the report for `frame` (the training rows, or the whole table) under the user's spec."""
    columns = [describe_column(frame[name]) for name in frame.columns]
    report = ValidationReport(rows=len(frame), columns=columns,
                              constant_columns=[c.name for c in columns if c.constant],
                              id_like_columns=[c.name for c in columns if c.id_like])
    if spec.target not in frame.columns:
        report.errors.append(f"There is no target column {spec.target!r}. Pick the column the model should "
                             f"predict (one of: {', '.join(map(str, frame.columns))}).")
        return report
    missing_inputs = [c for c in spec.inputs if c not in frame.columns]
    if missing_inputs:
        report.errors.append(f"Input columns {', '.join(missing_inputs)} are not in the table; "
                             "pick inputs among its columns.")
    inputs = [c for c in spec.inputs if c in frame.columns and c != spec.target]
    usable = [c for c in inputs if frame[c].nunique(dropna=True) > 1]
    if not usable:
        report.errors.append("No usable input column: every input is missing, constant or the target itself. "
                             "Keep at least one column that varies between rows as an input.")
    target = frame[spec.target]
    report.missing_target_rows = int(target.isna().sum())
    if report.missing_target_rows:
        report.warnings.append(f"{report.missing_target_rows} rows have no {spec.target!r} value; "
                               "they are left out of training.")
    known = frame[target.notna()]
    _check_target(report, known[spec.target], spec)
    _check_duplicates(report, known, inputs, spec.target)
    report.leaks = find_leaks(known, inputs, spec)
    for leak in report.leaks:
        report.warnings.append(f"Column {leak.column!r} {leak.reason}: it leaks the target, so the model would "
                               "learn nothing useful. Drop it unless it is known when predicting.")
    for name in report.constant_columns:
        if name in inputs:
            report.warnings.append(f"Column {name!r} has one value in every row; it adds nothing.")
    if validation is not None and inputs:
        report.train_validation_overlap = count_overlap(known, validation, inputs)
        if report.train_validation_overlap:
            report.warnings.append(f"{report.train_validation_overlap} validation rows also occur in training "
                                   "(same inputs): validation scores are optimistic.")
    return report


def _check_target(report: ValidationReport, target: pd.Series, spec: TableSpec) -> None:
    if target.empty:
        report.errors.append(f"The target column {spec.target!r} is empty; fill it in or pick another target.")
        return
    if spec.task == "classification":
        counts = category_keys(target, "categorical").value_counts()
        report.class_counts = {str(k): int(v) for k, v in counts.items()}
        if len(counts) < 2:
            report.errors.append(f"The target {spec.target!r} has one value ({counts.index[0]!r}) in every row; a "
                                 "classifier needs at least two classes. Pick another target or add rows.")
            return
        for name, count in counts.items():
            if count < 2:
                report.errors.append(f"Class {name!r} of {spec.target!r} has only {count} row; each class needs at "
                                     "least 2 (one to train on, one to validate). Add rows of it or remove it.")
            elif count < RARE_CLASS_SHARE * len(target):
                report.warnings.append(f"Class {name!r} is rare ({count} of {len(target)} rows).")
        return
    numbers = to_numbers(target)
    if numbers.notna().sum() < len(target):
        report.errors.append(f"The target {spec.target!r} holds values that are not numbers (e.g. "
                             f"{target[numbers.isna()].iloc[0]!r}); regression needs numbers. Fix them or "
                             "choose classification.")
        return
    if numbers.nunique() < 2:
        report.errors.append(f"The target {spec.target!r} has one value in every row; there is nothing to predict. "
                             "Pick another target.")
        return
    report.target_summary = {"min": float(numbers.min()), "max": float(numbers.max()),
                             "mean": float(numbers.mean()), "std": float(numbers.std(ddof=0)),
                             **{f"q{q}": float(numbers.quantile(q / 100)) for q in (5, 25, 50, 75, 95)}}


def _check_duplicates(report: ValidationReport, frame: pd.DataFrame, inputs: list[str], target: str) -> None:
    if not inputs:
        return
    report.duplicate_rows = int(frame.duplicated(subset=inputs + [target]).sum())
    by_inputs = frame.groupby(inputs, dropna=False, sort=False)[target].transform("nunique")
    report.conflicting_duplicate_rows = int((by_inputs > 1).sum())
    if report.duplicate_rows:
        report.warnings.append(f"{report.duplicate_rows} rows repeat an earlier row exactly.")
    if report.conflicting_duplicate_rows:
        report.warnings.append(f"{report.conflicting_duplicate_rows} rows share their inputs with a row that has "
                               "another target: no model can get all of them right.")


def find_leaks(frame: pd.DataFrame, inputs: list[str], spec: TableSpec) -> list[Leak]:
    """Input columns that are a copy of the target or predict it perfectly on their own."""
    if len(frame) < LEAK_MIN_ROWS:
        return []
    target = frame[spec.target]
    target_keys = category_keys(target, "categorical")
    leaks = []
    for column in inputs:
        both = frame[column].notna()
        if both.sum() < LEAK_MIN_ROWS:
            continue
        values, goal, goal_keys = frame.loc[both, column], target[both], target_keys[both]
        if category_keys(values, "categorical").equals(goal_keys):
            leaks.append(Leak(column, "is a copy of the target"))
            continue
        reason = _perfect_predictor(values, goal, goal_keys, spec.inputs.get(column), spec.task)
        if reason:
            leaks.append(Leak(column, reason))
    return leaks


def _perfect_predictor(values: pd.Series, goal: pd.Series, goal_keys: pd.Series, kind: str | None,
                       task: str) -> str:
    distinct = values.nunique()
    if kind == "numeric":
        numbers = to_numbers(values)
        if task == "regression":
            goal_numbers = to_numbers(goal)
            if goal_numbers.isna().any() or numbers.std() == 0 or goal_numbers.std() == 0:
                return ""   # a non-numeric or constant target is a blocking error reported elsewhere
            corr = np.corrcoef(numbers.fillna(numbers.mean()), goal_numbers)[0, 1]
            return f"has correlation {corr:.4f} with the target" if abs(corr) >= LEAK_CORRELATION else ""
        # Classes that occupy contiguous ranges of this column: one threshold per class boundary.
        order = np.argsort(numbers.to_numpy(), kind="stable")
        labels = goal_keys.to_numpy()[order]
        changes = int((labels[1:] != labels[:-1]).sum())
        return "separates the classes perfectly by value ranges" if changes <= goal_keys.nunique() - 1 else ""
    # A categorical input with few values per row, each of which always comes with one target value.
    if distinct > len(values) / 2:
        return ""   # nearly unique per row: an identifier, reported as such, not a leak
    pairs = pd.DataFrame({"value": category_keys(values, "categorical"), "goal": goal_keys})
    groups = pairs.groupby("value")["goal"].nunique()
    return "determines the target on its own (each of its values comes with one target value)" \
        if bool((groups == 1).all()) and task == "classification" else ""


def count_overlap(train: pd.DataFrame, validation: pd.DataFrame, inputs: list[str]) -> int:
    """Validation rows whose input values also occur as a training row."""
    columns = [c for c in inputs if c in validation.columns]
    hashes = pd.util.hash_pandas_object(train[columns].astype(str), index=False)
    other = pd.util.hash_pandas_object(validation[columns].astype(str), index=False)
    return int(other.isin(set(hashes)).sum())


def check_rows(spec: TableSpec, train: pd.DataFrame, validation: pd.DataFrame) -> None:
    """UserError when a split lacks a column of `spec` or has no target value at all."""
    for name, rows in (("training", train), ("validation", validation)):
        absent = [c for c in [spec.target, *spec.inputs] if c not in rows.columns]
        if absent:
            raise UserError(f"The {name} rows lack the columns {', '.join(absent)}; "
                            "pick the target and inputs among the table's columns.")
        if rows[spec.target].notna().sum() == 0:
            raise UserError(f"No {name} row has a {spec.target!r} value; fill in the target column.")
