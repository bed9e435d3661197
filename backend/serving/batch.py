"""Batch prediction: read a file like an upload, predict every row, score against labels if present."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backend.data.columns import suggest_columns
from backend.errors import UserError
from backend.tasks.text_classification.metrics import classification_metrics
from backend.data.reading import read_table
from backend.settings import Settings
from backend.serving.spreadsheet import neutralise_formulas

PREVIEW_ROWS = 20


@dataclass(frozen=True)
class BatchResult:
    """Where the predictions CSV is, and how good they were when the file had labels."""

    rows: int
    text_column: str
    label_column: str | None
    csv_path: Path
    preview: pd.DataFrame
    metrics: dict | None


def predict_file(path: Path, predictor, out_dir: Path, *, settings: Settings,
                 text_column: str | None = None) -> BatchResult:
    """Predict each row of `path` with a classifier's predictor (`.predict(texts)`, `.labels`, as its task
    loads it); writes <name>-predictions.csv into `out_dir`."""
    frame = read_table(path, max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows,
                       max_columns=settings.max_columns).frame
    if frame.empty:
        raise UserError(f"{path.name} has no rows to predict. Upload a file with one text per row.")
    suggested_text, suggested_label = suggest_columns(frame)
    text_column = text_column or suggested_text
    if text_column is None or text_column not in frame.columns:
        raise UserError(f"No text column found in {path.name} (columns: {', '.join(map(str, frame.columns))}). "
                        "Give the file a header with a column such as 'text'.")
    texts = frame[text_column].fillna("").astype(str).tolist()
    predictions = predictor.predict(texts)
    out = frame.copy()
    out["predicted_label"] = [p["label"] for p in predictions]
    for label in predictor.labels:
        out[f"score_{label}"] = [round(p["scores"][label], 6) for p in predictions]
    metrics, label_column = None, None
    known = set(predictor.labels)
    if suggested_label is not None and suggested_label != text_column:
        given = frame[suggested_label].fillna("").astype(str).str.strip()
        if given.isin(known).mean() >= 0.9:  # only score when the column really holds the model's classes
            label_column = suggested_label
            mask = given.isin(known)
            ids = {label: i for i, label in enumerate(predictor.labels)}
            metrics = classification_metrics([ids[v] for v in given[mask]],
                                             [ids[p] for p in out.loc[mask, "predicted_label"]], predictor.labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{path.stem}-predictions.csv"
    neutralise_formulas(out).to_csv(csv_path, index=False)  # a spreadsheet must not run a cell as a formula
    return BatchResult(rows=len(out), text_column=text_column, label_column=label_column, csv_path=csv_path,
                       preview=out.head(PREVIEW_ROWS), metrics=metrics)
