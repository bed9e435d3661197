"""What the Runs tab shows about a run beyond its record: the best score so far, the validation
texts the model gets wrong, and where an imported run came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backend.errors import UserError
from backend.tasks.registry import TASKS
from storage.records import RunRecord
from storage.repository import Repository

MISCLASSIFIED_ROWS = 2_000  # validation texts scored per request: enough to find the errors, quick on a CPU
MISCLASSIFIED_COLUMNS = ["text", "true", "predicted", "confidence"]


def best_so_far(repo: Repository, run: RunRecord) -> float | None:
    """The best headline score any evaluation of `run` logged (macro F1: highest; bits/char: lowest)."""
    task = TASKS.get(run.task)
    values = [m.value for m in repo.get_metrics(run.id, [task.headline_key])] if task else []
    if not values:
        return None
    return max(values) if task.higher_is_better else min(values)


def headline_text(task: str, value: float) -> str:
    """'macro F1 0.956' or '1.234 bits/char'."""
    if task not in TASKS:
        return f"score {value:.3f}"
    return TASKS[task].headline_format.format(label=TASKS[task].headline_label, value=value)


def best_so_far_by_run(repo: Repository, runs: list[RunRecord]) -> dict[int, str]:
    """For runs still training (no final metrics yet): the best score of their evaluations so far."""
    shown = {}
    for run in runs:
        if run.status in ("running", "interrupted", "cancelled") and not run.metrics:
            value = best_so_far(repo, run)
            if value is not None:
                shown[run.id] = headline_text(run.task, value) + " so far"
    return shown


def misclassified(repo: Repository, run_id: int, limit: int = 50) -> pd.DataFrame:
    """Validation texts the run's saved (best) model gets wrong, most confident mistakes first.

    Scores the first MISCLASSIFIED_ROWS validation texts of the run's dataset with its saved model.
    """
    from backend.data.store import load_split
    from backend.serving.startup import load_model_stack

    run = repo.get_run(run_id)
    if run.task not in TASKS or TASKS[run.task].panel != "classify":
        raise UserError(f"Run #{run.id} is a {run.task} model: only classifiers have misclassified examples.")
    if run.status != "succeeded" or not run.output_dir:
        raise UserError(f"Run #{run.id} is {run.status}: misclassified examples need a finished run.")
    if run.dataset_id is None:
        raise UserError(f"Run #{run.id} was imported: it has no validation set here to check.")
    frame = load_split(repo.get_dataset(run.dataset_id), "validation").head(MISCLASSIFIED_ROWS)
    load_model_stack()
    predictions = TASKS[run.task].load_predictor(Path(run.output_dir)).predict(frame["text"].astype(str).tolist())
    rows = [{"text": text, "true": str(true), "predicted": p["label"], "confidence": round(p["scores"][p["label"]], 3)}
            for text, true, p in zip(frame["text"], frame["label"], predictions) if p["label"] != str(true)]
    rows.sort(key=lambda row: -row["confidence"])
    return pd.DataFrame(rows[:limit], columns=MISCLASSIFIED_COLUMNS)
