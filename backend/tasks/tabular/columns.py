"""Column kinds of a table, and the suggestions shown to the user: target, task, columns to drop.

Kinds (after Ludwig's feature types): numeric, categorical (strings, or integers with few distinct
values), boolean, datetime (expanded to year / month / day-of-week / hour by preprocessing), and
free text (long, mostly unique strings: dropped by default, since the tabular templates cannot
read prose). Every suggestion can be overridden; `TableSpec` holds the user's final choice.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text"]
TabularTask = Literal["classification", "regression"]
INPUT_KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime")

# An integer input with at most this many distinct values is a category (a rating, a count of
# children), not a quantity: embeddings then learn each value's effect separately.
MAX_INTEGER_CATEGORIES = 10
# An integer target with at most this many distinct values is a class label (wine's 0/1/2).
MAX_INTEGER_CLASSES = 20
# Free text: long strings (mean length) of which most are unique.
TEXT_MIN_MEAN_LENGTH = 30
TEXT_MIN_UNIQUE_SHARE = 0.5
# Shares of non-missing values that must parse as numbers / dates for a string column to be one.
PARSE_SHARE = 0.98
_TRUE_FALSE = {frozenset({"true", "false"}), frozenset({"yes", "no"}), frozenset({"y", "n"}),
               frozenset({"t", "f"})}
TARGET_NAMES = ("label", "labels", "target", "class", "income", "churn", "y", "outcome", "response",
                "price", "default", "fraud", "survived")
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key|index)$|^id[_\s-]|^row(_|\s)?(no|num|number)?$", re.I)
_HAS_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class ColumnInfo:
    """What the table says about one column, and what we suggest doing with it."""

    name: str
    kind: ColumnKind
    dtype: str                      # pandas dtype as read, for display
    missing_share: float            # share of rows with no value
    distinct: int                   # distinct non-missing values
    id_like: bool = False           # one distinct value per row: an identifier, not a feature
    constant: bool = False          # one value (or none): carries no information
    suggest_drop: bool = False
    note: str = ""


@dataclass(frozen=True)
class TableSchema:
    """Column kinds plus the suggested target and task."""

    columns: list[ColumnInfo]
    suggested_target: str
    suggested_task: TabularTask
    rows: int
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> ColumnInfo:
        """The ColumnInfo named `name` (KeyError if there is none)."""
        for info in self.columns:
            if info.name == name:
                return info
        raise KeyError(name)


class TableSpec(BaseModel, frozen=True, extra="forbid"):
    """The user's final choice: target, task, and the kind of every input column (others are dropped)."""

    target: str = Field(..., min_length=1, description="Column the model learns to predict.")
    task: TabularTask = Field(..., description="classification: predict a class; regression: predict a number.")
    inputs: dict[str, Literal["numeric", "categorical", "boolean", "datetime"]] = Field(
        ..., description="Input columns and their kinds; columns not listed are not used.")


def infer_schema(frame: pd.DataFrame) -> TableSchema:
    """Detect column kinds and suggest target, task and columns to drop."""
    columns = [describe_column(frame[name]) for name in frame.columns]
    target = suggest_target(frame)
    target_info = next(c for c in columns if c.name == target)
    notes = [f"{c.name}: {c.note}" for c in columns if c.note]
    return TableSchema(columns=columns, suggested_target=target,
                       suggested_task=suggest_task(frame[target], target_info.kind), rows=len(frame), notes=notes)


def default_spec(schema: TableSchema, target: str | None = None, task: TabularTask | None = None) -> TableSpec:
    """The spec the suggestions add up to: every column not suggested for dropping is an input."""
    target = target or schema.suggested_target
    if task is None:
        task = schema.suggested_task if target == schema.suggested_target else "classification"
    inputs = {c.name: c.kind for c in schema.columns
              if c.name != target and not c.suggest_drop and c.kind in INPUT_KINDS}
    return TableSpec(target=target, task=task, inputs=inputs)


def describe_column(series: pd.Series) -> ColumnInfo:
    """Kind, missing share, cardinality and drop suggestion of one column."""
    values = series.dropna()
    rows = len(series)
    distinct = int(values.nunique())
    kind = detect_kind(series)
    missing = float(series.isna().mean()) if rows else 0.0
    constant = distinct <= 1
    id_like = _looks_like_id(series.name, values, kind, rows, distinct)
    note = ""
    if kind == "text":
        note = "long free text: dropped by default (the tabular templates do not read prose)"
    elif constant:
        note = "one value in every row: carries no information, dropped by default"
    elif id_like:
        note = "a different value in every row (an identifier): dropped by default"
    return ColumnInfo(name=str(series.name), kind=kind, dtype=str(series.dtype), missing_share=missing,
                      distinct=distinct, id_like=id_like, constant=constant,
                      suggest_drop=kind == "text" or constant or id_like, note=note)


def detect_kind(series: pd.Series) -> ColumnKind:
    """numeric / categorical / boolean / datetime / text, from dtype and values."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series.dtype):
        if _is_integral(values) and values.nunique() <= MAX_INTEGER_CATEGORIES:
            # 0/1 columns are flags; other small integer sets are codes or counts.
            return "boolean" if set(values.unique()) <= {0, 1} and values.nunique() == 2 else "categorical"
        return "numeric"
    strings = values.astype(str).str.strip()
    if strings.empty:
        return "categorical"
    if frozenset(strings.str.lower().unique()) in _TRUE_FALSE:
        return "boolean"
    # Parse each distinct value once, weighted by how often it occurs: columns repeat a lot.
    counts = strings.value_counts()
    distinct = pd.Series(counts.index, dtype=object)
    weights = counts.to_numpy() / counts.sum()

    def share(parsed_ok: pd.Series) -> float:
        return float(weights[parsed_ok.to_numpy(dtype=bool)].sum())

    if share(pd.to_numeric(distinct, errors="coerce").notna()) >= PARSE_SHARE:
        return "numeric"
    if (share(distinct.str.contains(_HAS_DIGIT)) >= PARSE_SHARE
            and share(parse_datetimes(distinct).notna()) >= PARSE_SHARE):
        return "datetime"
    if strings.str.len().mean() >= TEXT_MIN_MEAN_LENGTH and strings.nunique() >= TEXT_MIN_UNIQUE_SHARE * len(strings):
        return "text"
    return "categorical"


def parse_datetimes(series: pd.Series) -> pd.Series:
    """Datetimes from a column (strings in any common format); unparsable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    with warnings.catch_warnings():
        # "Could not infer format" is expected for mixed formats; each value is parsed on its own.
        warnings.simplefilter("ignore", UserWarning)
        # utc=True: values with different UTC offsets would otherwise raise; naive values keep their clock time.
        return pd.to_datetime(series.astype("string"), errors="coerce", format="mixed", utc=True)


def suggest_target(frame: pd.DataFrame) -> str:
    """A column named like a target (label, target, class, income, churn, y, ...), else the last one."""
    by_name = {str(name).strip().lower(): str(name) for name in frame.columns}
    for candidate in TARGET_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    return str(frame.columns[-1])


def suggest_task(target: pd.Series, kind: ColumnKind | None = None) -> TabularTask:
    """classification for categories, booleans and few distinct integers; regression for other numbers."""
    kind = kind or detect_kind(target)
    values = target.dropna()
    if kind == "numeric" and not (_is_integral(values) and values.nunique() <= MAX_INTEGER_CLASSES):
        return "regression"
    return "classification"


def _is_integral(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    if not pd.api.types.is_float_dtype(values.dtype) or values.empty:
        return False
    array = values.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))


def _looks_like_id(name, values: pd.Series, kind: ColumnKind, rows: int, distinct: int) -> bool:
    if rows < 2 or distinct < rows or kind in ("text", "datetime", "boolean"):
        return False
    if _ID_NAME.search(str(name)):
        return True
    # Unique strings, or unique integers in a table big enough that this is no coincidence.
    # Unique floats are normal for measurements (every row of breast_cancer differs).
    return kind == "categorical" or (_is_integral(values) and rows >= 50)
