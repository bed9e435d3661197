"""Classification metrics from scikit-learn, as plain JSON-able dicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(true_ids: Sequence[int], predicted_ids: Sequence[int], labels: Sequence[str],
                           loss: float | None = None) -> dict:
    """Accuracy, macro P/R/F1, per-class P/R/F1/support and the confusion matrix (rows = truth)."""
    true_ids, predicted_ids = np.asarray(true_ids, dtype=np.int64), np.asarray(predicted_ids, dtype=np.int64)
    ids = list(range(len(labels)))  # every class shows up, even one missing from this split
    precision, recall, f1, support = precision_recall_fscore_support(
        true_ids, predicted_ids, labels=ids, average=None, zero_division=0)
    macro = precision_recall_fscore_support(true_ids, predicted_ids, labels=ids, average="macro", zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(true_ids, predicted_ids)) if len(true_ids) else 0.0,
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "per_class": {label: {"precision": float(precision[i]), "recall": float(recall[i]),
                              "f1": float(f1[i]), "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion_matrix": confusion_matrix(true_ids, predicted_ids, labels=ids).tolist(),
        "labels": list(labels),
    }
    if loss is not None:
        metrics["loss"] = float(loss)
    return metrics


def progress_values(metrics: dict) -> dict[str, float]:
    """The values of a classifier's evaluation that a progress report shows (the Runs tab's curves)."""
    return {"eval_loss": metrics["loss"], "eval_accuracy": metrics["accuracy"], "eval_macro_f1": metrics["macro_f1"],
            "eval_macro_precision": metrics["macro_precision"], "eval_macro_recall": metrics["macro_recall"]}
