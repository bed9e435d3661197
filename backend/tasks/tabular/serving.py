"""Predictions of a trained tabular model: rows given as JSON objects (a form, the CLI), or a whole table file.

A file is read like an upload (CSV/TSV/xlsx/Parquet/JSON); its columns are matched to the model's
inputs by name, absent ones count as missing, and extra ones are kept in the output beside the
prediction. When the file also holds the target column, the predictions are scored against it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.errors import UserError, listing
from backend.serving.spreadsheet import neutralise_formulas
from backend.tasks.tabular.metrics import classification_metrics, regression_metrics
from backend.tasks.tabular.model_io import PREPROCESSING_FILE, TabularModel
from backend.tasks.tabular.preprocessing import to_numbers
from backend.tasks.tabular.reading import read_table

log = logging.getLogger(__name__)

PREVIEW_ROWS = 20


@dataclass(frozen=True)
class TablePredictions:
    """Where the predictions CSV is, a preview, and the scores when the file had the target column."""

    rows: int
    csv_path: Path
    preview: pd.DataFrame
    target_column: str | None
    metrics: dict | None
    missing_columns: list[str]


def load_tabular(folder) -> TabularModel:
    """The model of a run folder, cached while its preprocessing file is unchanged."""
    folder = Path(folder)
    stamp = (folder / PREPROCESSING_FILE).stat().st_mtime_ns if (folder / PREPROCESSING_FILE).is_file() else 0
    return _cached(str(folder.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _cached(folder: str, stamp: int) -> TabularModel:
    return TabularModel.load(folder)


def predict_rows(folder, rows: list[dict]) -> list[dict]:
    """One answer per row: {"prediction": class, "probabilities": {class: p}} or {"prediction": number}."""
    model = load_tabular(folder)
    unknown = sorted({key for row in rows for key in row} - set(model.preprocessor.spec.inputs))
    answers = model.predict_records(rows)
    if unknown:
        log.info("columns the model does not read were ignored: %s", unknown)
    return answers


def predict_table(folder, path: Path, out_dir: Path) -> TablePredictions:
    """Predict each row of a table file; writes <name>-predictions.csv into `out_dir`."""
    path = Path(path)
    frame = read_table(path)
    model = load_tabular(folder)
    spec = model.preprocessor.spec
    missing = [c for c in spec.inputs if c not in frame.columns]
    if len(missing) == len(spec.inputs):
        raise UserError(f"{path.name} has none of the model's input columns ({listing(list(spec.inputs))}); "
                        f"its columns are {listing([str(c) for c in frame.columns])}. Use a file with the same "
                        "column names as the training table.")
    output = model.predict_output(frame)
    out = frame.copy()
    metrics = None
    if model.task == "classification":
        classes = model.preprocessor.classes
        out[f"predicted_{spec.target}"] = [classes[i] for i in output.argmax(axis=1)]
        for index, name in enumerate(classes):
            out[f"probability_{name}"] = np.round(output[:, index], 6)
        if spec.target in frame.columns:
            truth = model.preprocessor.encode_target(frame[spec.target])
            if (truth >= 0).any():
                metrics = classification_metrics(truth, output)
                metrics["labels"] = list(classes)
    else:
        out[f"predicted_{spec.target}"] = output
        if spec.target in frame.columns:
            truth = to_numbers(frame[spec.target]).to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isfinite(truth).sum() >= 2:
                metrics = regression_metrics(truth, output)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{path.stem}-predictions.csv"
    neutralise_formulas(out).to_csv(csv_path, index=False)  # a spreadsheet must not run a cell as a formula
    return TablePredictions(rows=len(out), csv_path=csv_path, preview=out.head(PREVIEW_ROWS),
                            target_column=spec.target if metrics is not None else None, metrics=metrics,
                            missing_columns=missing)


def form_fields(folder) -> list[dict]:
    """One field per input column of a model, for a form: its kind, and the range or the values seen in training.

    Each is {"column", "kind", "minimum", "maximum", "mean"} for numbers, {"column", "kind", "choices"} for
    categories and booleans, {"column", "kind"} for dates.
    """
    preprocessor = load_tabular(folder).preprocessor
    numeric = {f.column: f for f in preprocessor.numeric if f.part is None}
    categorical = {f.column: f for f in preprocessor.categorical}
    fields = []
    for column, kind in preprocessor.spec.inputs.items():
        if column in numeric:
            feature = numeric[column]
            fields.append({"column": column, "kind": kind, "minimum": feature.minimum, "maximum": feature.maximum,
                           "mean": feature.mean})
        elif column in categorical:
            fields.append({"column": column, "kind": kind, "choices": list(categorical[column].values)})
        else:
            fields.append({"column": column, "kind": kind})
    return fields
