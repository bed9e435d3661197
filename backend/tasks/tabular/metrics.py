"""Scores of a tabular model (scikit-learn's metrics) and permutation importance of its input columns."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import (accuracy_score, auc, confusion_matrix, mean_absolute_error, mean_squared_error,
                             precision_recall_curve, r2_score, roc_curve)

log = logging.getLogger(__name__)

CURVE_POINTS = 101   # enough for a smooth plot, small enough to store with every run
FIT_POINTS = 500     # predicted-vs-actual points stored with a regression run: a readable scatter plot


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict:
    """accuracy, macro precision/recall/F1, confusion matrix; for two classes ROC-AUC and the PR curve.

    Args:
        y_true: class indices [n]; rows with -1 (a class unseen in training) are left out.
        probabilities: [n, n_classes].
    """
    keep = y_true >= 0
    y_true, probabilities = y_true[keep], probabilities[keep]
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, predicted, labels=range(n_classes))
    precision, recall, f1 = macro_scores(matrix)
    scores = {"accuracy": float(np.trace(matrix) / max(1, matrix.sum())), "macro_precision": precision,
              "macro_recall": recall, "macro_f1": f1, "confusion_matrix": matrix.tolist()}
    if n_classes == 2 and len(np.unique(y_true)) == 2:
        # roc_auc_score's own computation (the area under roc_curve) without its input checks.
        scores["roc_auc"] = float(auc(*roc_curve(y_true, probabilities[:, 1])[:2]))
        precision, recall, _ = precision_recall_curve(y_true, probabilities[:, 1])
        keep = np.unique(np.linspace(0, len(precision) - 1, CURVE_POINTS).round().astype(int))
        scores["pr_curve"] = {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}
    return scores


def macro_scores(matrix: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall and F1 of a confusion matrix [true, predicted].

    The same values as scikit-learn's precision_recall_fscore_support(average="macro",
    zero_division=0) over every class (tests compare them), from the matrix already computed:
    each scikit-learn metric call re-validates its inputs, which costs a few milliseconds, more
    than this arithmetic, on every gbdt fit and every neural evaluation.
    """
    true_positive = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(actual > 0, true_positive / actual, 0.0)
        # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (predicted + actual), 0 where a class is neither.
        f1 = np.where(predicted + actual > 0, 2 * true_positive / (predicted + actual), 0.0)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE and R² in the target's own units (rows with a missing target left out)."""
    keep = np.isfinite(y_true)
    y_true, predicted = y_true[keep], predicted[keep]
    return {"rmse": float(np.sqrt(mean_squared_error(y_true, predicted))),
            "mae": float(mean_absolute_error(y_true, predicted)), "r2": float(r2_score(y_true, predicted))}


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, max_points: int = FIT_POINTS) -> dict:
    """Up to `max_points` validation rows as {"actual": [...], "predicted": [...]}, for a scatter plot
    (evenly spaced over the rows, which are in no particular order; rows without a target left out)."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    keep = np.isfinite(actual) & np.isfinite(predicted)
    actual, predicted = actual[keep], predicted[keep]
    rows = np.unique(np.linspace(0, len(actual) - 1, min(len(actual), max_points)).round().astype(int))
    return {"actual": actual[rows].tolist(), "predicted": predicted[rows].tolist()}


class _FramePredictor:
    """The least scikit-learn's permutation_importance needs: an object it hands to our scorer."""

    def __init__(self, predict: Callable[[pd.DataFrame], np.ndarray]):
        self.predict = predict

    def fit(self, *args, **kwargs):   # never called: the model is already trained
        return self


def permutation_importances(predict: Callable[[pd.DataFrame], np.ndarray], frame: pd.DataFrame,
                            y_true: np.ndarray, task: str, columns: list[str], n_repeats: int = 5,
                            max_rows: int = 5000, seed: int = 42) -> dict[str, dict[str, float]]:
    """How much the validation score drops when one input column is shuffled, per column, largest first.

    Args:
        predict: frame -> class probabilities [n, k] (classification) or values [n] (regression).
        y_true: class indices or target values of `frame`'s rows.
    The score is accuracy for classification and R² for regression.
    """
    def score(estimator: _FramePredictor, rows: pd.DataFrame, y: np.ndarray) -> float:
        output = estimator.predict(rows)
        if task == "classification":
            keep = y >= 0
            return float(accuracy_score(y[keep], output.argmax(axis=1)[keep]))
        keep = np.isfinite(y)
        return float(r2_score(y[keep], output[keep]))

    result = permutation_importance(_FramePredictor(predict), frame[columns], y_true, scoring=score,
                                    n_repeats=n_repeats, random_state=seed,
                                    max_samples=min(1.0, max_rows / max(1, len(frame))))
    order = np.argsort(-result.importances_mean)
    return {columns[i]: {"mean": float(result.importances_mean[i]), "std": float(result.importances_std[i])}
            for i in order}
