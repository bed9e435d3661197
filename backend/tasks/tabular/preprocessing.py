"""Turn table rows into model inputs: fitted on the training split only, saved as JSON (never pickle).

What a fitted Preprocessor holds, per input column kind:
- numeric: mean and standard deviation (values are standardised; a missing value becomes the mean,
  i.e. 0, plus a 0/1 missing indicator when the training split had missing values in that column);
- datetime: expanded to year, month, day-of-week and hour, each then handled as numeric;
- categorical and boolean: a vocabulary; code 0 is "missing", code 1 is "unknown" (a value not seen
  in training, or seen fewer than MIN_CATEGORY_COUNT times, so the unknown bucket is trained too),
  codes 2.. the known values;
- the target: the class names (classification) or its mean and standard deviation (regression).
`to_json` / `from_json` round-trip exactly, so a prediction on a new row goes through the same
transform as training did.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backend.tasks.tabular.columns import TableSpec, parse_datetimes

log = logging.getLogger(__name__)

MISSING_CODE, UNKNOWN_CODE = 0, 1
MIN_CATEGORY_COUNT = 2
DATETIME_PARTS = ("year", "month", "day_of_week", "hour")
FORMAT_VERSION = 1
_TRUE = {"true", "yes", "y", "t", "1"}
_FALSE = {"false", "no", "n", "f", "0"}


@dataclass(frozen=True)
class NumericFeature:
    """One standardised input: a numeric column or one part of a datetime column."""

    name: str            # feature name: the column, or "<column>.<part>" for a datetime part
    column: str
    part: str | None     # datetime part, None for a numeric column
    mean: float
    std: float
    missing_indicator: bool
    minimum: float = 0.0   # observed range in training, for a form's number box (not used to clip)
    maximum: float = 0.0


@dataclass(frozen=True)
class CategoricalFeature:
    """One categorical or boolean column and its vocabulary (codes 2.. in this order)."""

    column: str
    kind: str
    values: list[str]

    @property
    def cardinality(self) -> int:
        """Number of codes, the missing and unknown buckets included."""
        return len(self.values) + 2


@dataclass(frozen=True)
class EncodedRows:
    """Model inputs for n rows: float32 numerics [n, numeric_width] and int64 codes [n, n_categorical]."""

    numeric: np.ndarray
    categorical: np.ndarray

    def __len__(self) -> int:
        return len(self.numeric)

    def take(self, index: np.ndarray) -> "EncodedRows":
        """The rows at `index`."""
        return EncodedRows(self.numeric[index], self.categorical[index])


@dataclass(frozen=True)
class Preprocessor:
    """The fitted transform from a table's rows to model inputs and targets."""

    spec: TableSpec
    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]
    classes: list[str] = field(default_factory=list)   # classification only
    target_mean: float = 0.0                           # regression only
    target_std: float = 1.0

    # --- fitting ------------------------------------------------------------------------------

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: TableSpec, columns: "ColumnReader | None" = None) -> "Preprocessor":
        """Learn statistics and vocabularies from the training split only (`columns`: train's reader)."""
        columns = columns or ColumnReader(train)
        numeric: list[NumericFeature] = []
        categorical: list[CategoricalFeature] = []
        for column, kind in spec.inputs.items():
            if kind == "numeric":
                numeric.append(_fit_numeric(columns.numbers(column), column, column, None))
            elif kind == "datetime":
                numeric += [_fit_numeric(columns.date_part(column, part), f"{column}.{part}", column, part)
                            for part in DATETIME_PARTS]
            else:
                counts = _key_counts(*columns.keys(column, kind))
                values = sorted(key for key, count in counts.items() if count >= MIN_CATEGORY_COUNT)
                categorical.append(CategoricalFeature(column, kind, values))
        if spec.task == "classification":
            return cls(spec, numeric, categorical,
                       classes=sorted(_key_counts(*columns.keys(spec.target, "categorical"))))
        values = columns.numbers(spec.target).dropna()
        return cls(spec, numeric, categorical, target_mean=float(values.mean()),
                   target_std=float(values.std(ddof=0)) or 1.0)

    @classmethod
    def fit_transform(cls, train: pd.DataFrame, spec: TableSpec) -> tuple["Preprocessor", EncodedRows, np.ndarray]:
        """fit(train), then train's encoded rows and target, reading each of train's columns once."""
        columns = ColumnReader(train)
        preprocessor = cls.fit(train, spec, columns)
        return preprocessor, preprocessor.transform(train, columns), preprocessor.encode_target_of(columns)

    # --- transforming -------------------------------------------------------------------------

    @property
    def numeric_names(self) -> list[str]:
        """Names of the columns of EncodedRows.numeric, indicators last."""
        return [f.name for f in self.numeric] + [f"{f.name}.missing" for f in self.numeric if f.missing_indicator]

    @property
    def numeric_width(self) -> int:
        return len(self.numeric_names)

    @property
    def cardinalities(self) -> list[int]:
        return [f.cardinality for f in self.categorical]

    def transform(self, frame: pd.DataFrame, columns: "ColumnReader | None" = None) -> EncodedRows:
        """Encode rows; missing values, unknown categories and absent columns never raise."""
        columns = columns or ColumnReader(frame)
        absent = [c for c in self.spec.inputs if c not in frame.columns]
        if absent:
            log.warning("columns %s are absent; treated as missing", absent)
        values, indicators = [], []
        for feature in self.numeric:
            x = (columns.numbers(feature.column) if feature.part is None
                 else columns.date_part(feature.column, feature.part)).to_numpy(dtype=np.float64, na_value=np.nan)
            missing = ~np.isfinite(x)
            values.append(np.where(missing, 0.0, (x - feature.mean) / feature.std))
            if feature.missing_indicator:
                indicators.append(missing.astype(np.float64))
        n = len(frame)
        numeric = np.stack(values + indicators, axis=1).astype(np.float32) if values else np.zeros((n, 0), np.float32)
        codes = [self._codes(columns.keys(f.column, f.kind), f) for f in self.categorical]
        categorical = np.stack(codes, axis=1) if codes else np.zeros((n, 0), np.int64)
        return EncodedRows(numeric, categorical)

    def _codes(self, distinct: tuple[np.ndarray, list[str | None]], feature: CategoricalFeature) -> np.ndarray:
        lookup = {value: code for code, value in enumerate(feature.values, start=2)}
        return _coded(*distinct, lookup, missing=MISSING_CODE, unknown=UNKNOWN_CODE)

    def encode_target(self, series: pd.Series) -> np.ndarray:
        """Class indices (int64; -1 for a class not seen in training or a missing value) or standardised floats."""
        return self.encode_target_of(ColumnReader(series.to_frame(self.spec.target)))

    def encode_target_of(self, columns: "ColumnReader") -> np.ndarray:
        """encode_target of the target column of the reader's frame."""
        if self.spec.task == "classification":
            lookup = {name: index for index, name in enumerate(self.classes)}
            return _coded(*columns.keys(self.spec.target, "categorical"), lookup, missing=-1, unknown=-1)
        return ((columns.numbers(self.spec.target).to_numpy(dtype=np.float64, na_value=np.nan) - self.target_mean)
                / self.target_std).astype(np.float32)

    def decode_regression(self, standardised: np.ndarray) -> np.ndarray:
        """Predicted values in the target's own units."""
        return standardised * self.target_std + self.target_mean

    # --- saving -------------------------------------------------------------------------------

    def to_json(self) -> str:
        """Everything needed to rebuild this transform, as JSON."""
        return json.dumps({"format_version": FORMAT_VERSION, "spec": self.spec.model_dump(),
                           "numeric": [asdict(f) for f in self.numeric],
                           "categorical": [asdict(f) for f in self.categorical], "classes": self.classes,
                           "target_mean": self.target_mean, "target_std": self.target_std}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Preprocessor":
        """Rebuild a transform saved by to_json."""
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"preprocessing format {data.get('format_version')} is not {FORMAT_VERSION}")
        return cls(spec=TableSpec.model_validate(data["spec"]),
                   numeric=[NumericFeature(**f) for f in data["numeric"]],
                   categorical=[CategoricalFeature(**f) for f in data["categorical"]],
                   classes=list(data["classes"]), target_mean=float(data["target_mean"]),
                   target_std=float(data["target_std"]))

    def save(self, path: str | Path) -> None:
        """Write to_json() to `path`."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Preprocessor":
        """Read a transform written by save()."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _fit_numeric(values: pd.Series, name: str, column: str, part: str | None) -> NumericFeature:
    x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    present = x[~np.isnan(x)]
    mean = float(present.mean()) if len(present) else 0.0
    std = float(present.std()) if len(present) > 1 else 0.0   # ddof=0, as standardising uses it
    return NumericFeature(name=name, column=column, part=part, mean=mean, std=std if std > 0 else 1.0,
                          missing_indicator=len(present) < len(x),
                          minimum=float(present.min()) if len(present) else 0.0,
                          maximum=float(present.max()) if len(present) else 0.0)


def to_numbers(series: pd.Series) -> pd.Series:
    """Floats from a column of numbers or numeric strings; anything else becomes NaN."""
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype(float)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_extension_array_dtype(series.dtype):
        out = series.astype("float64")   # already numbers: skip the parser (a big share of preprocessing time)
    else:
        out = pd.to_numeric(series, errors="coerce").astype("float64")
    return out.where(np.isfinite(out))


def _date_part(dates: pd.Series, part: str) -> pd.Series:
    accessor = dates.dt
    values = {"year": accessor.year, "month": accessor.month, "day_of_week": accessor.dayofweek,
              "hour": accessor.hour}[part]
    return values.astype("float64")


def category_keys(series: pd.Series, kind: str) -> pd.Series:
    """One spelling per category: 3, 3.0 and "3" are the same; booleans become "true"/"false"; None if missing."""
    positions, keys = _distinct_keys(series, kind)
    return pd.Series(np.array(keys + [None], dtype=object)[positions], index=series.index, dtype=object)


def _distinct_keys(series: pd.Series, kind: str) -> tuple[np.ndarray, list[str | None]]:
    """(index of each row's distinct value, -1 when missing; the key of each distinct value).

    The per-value Python work (_category_key) runs once per distinct value, not once per row: a
    column has few distinct values, so this stays fast on big tables.
    """
    positions, uniques = pd.factorize(series, use_na_sentinel=True)
    return positions, [_category_key(v, kind) for v in uniques]


def _key_counts(positions: np.ndarray, keys: list[str | None]) -> dict[str, int]:
    """Rows per category key (missing values left out), from _distinct_keys' output."""
    counts: dict[str, int] = {}
    for key, count in zip(keys, np.bincount(positions[positions >= 0], minlength=len(keys)).tolist()):
        if key is not None:   # two raw spellings (3 and "3.0") can share one key
            counts[key] = counts.get(key, 0) + count
    return counts


def _coded(positions: np.ndarray, keys: list[str | None], lookup: dict[str, int], missing: int,
           unknown: int) -> np.ndarray:
    """int64 code per row: lookup[key], `unknown` for a key not in lookup, `missing` for a missing value."""
    codes = np.array([missing if key is None else lookup.get(key, unknown) for key in keys] + [missing],
                     dtype=np.int64)
    return codes[positions]   # position -1 (missing) picks the `missing` code appended last


class ColumnReader:
    """One frame's columns as the transform reads them, each converted once.

    Fitting on the training split and encoding it read the same columns the same way; sharing one
    reader halves that work. A column the frame lacks reads as all missing.
    """

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._done: dict[tuple, object] = {}

    def _column(self, name: str) -> pd.Series:
        if name in self.frame.columns:
            return self.frame[name]
        return pd.Series(np.full(len(self.frame), None, dtype=object), index=self.frame.index, name=name)

    def _once(self, key: tuple, make):
        if key not in self._done:
            self._done[key] = make()
        return self._done[key]

    def numbers(self, name: str) -> pd.Series:
        """to_numbers of the column."""
        return self._once(("numbers", name), lambda: to_numbers(self._column(name)))

    def date_part(self, name: str, part: str) -> pd.Series:
        """One part (DATETIME_PARTS) of the column parsed as dates, as floats."""
        dates = self._once(("dates", name), lambda: parse_datetimes(self._column(name)))
        return _date_part(dates, part)

    def keys(self, name: str, kind: str) -> tuple[np.ndarray, list[str | None]]:
        """_distinct_keys of the column."""
        return self._once(("keys", name, kind), lambda: _distinct_keys(self._column(name), kind))


def _category_key(value, kind: str) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if value == int(value):
            value = int(value)
    if isinstance(value, (bool, np.bool_)):
        text = "true" if value else "false"
    else:
        text = str(value).strip()
    if kind == "boolean":
        lowered = text.lower()
        return "true" if lowered in _TRUE else "false" if lowered in _FALSE else text
    return text if text else None
