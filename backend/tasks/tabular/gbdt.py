"""The `gbdt` template: gradient-boosted trees with LightGBM, on the same preprocessed inputs.

Not an epoch loop, but it reports like one: a LightGBM callback calls `on_progress(round, values)`
after every boosting round with the validation loss, checks `should_stop()` (raises Cancelled) and
the time budget. Early stopping watches the validation split. The booster is saved in LightGBM's
own text format (never pickle).

Inputs: the standardised numbers and missing indicators (trees ignore the scaling) and the
category codes, declared as LightGBM categorical features so it splits on groups of categories.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import lightgbm as lgb
import numpy as np

from backend.errors import Cancelled
from backend.tasks.tabular.config import GbdtTemplate, TabularFitSettings
from backend.tasks.tabular.metrics import classification_metrics, regression_metrics
from backend.tasks.tabular.networks import FitResult, ProgressFn
from backend.tasks.tabular.preprocessing import EncodedRows, Preprocessor

log = logging.getLogger(__name__)


def gbdt_features(rows: EncodedRows) -> np.ndarray:
    """One float matrix: numbers and indicators, then category codes."""
    return np.hstack([rows.numeric.astype(np.float64), rows.categorical.astype(np.float64)])


def _params(template: GbdtTemplate, preprocessor: Preprocessor, settings: TabularFitSettings) -> dict:
    n_classes = len(preprocessor.classes)
    # The first metric is the validation loss early stopping watches; the second is reported only
    # (the share wrong, or the mean absolute error), for the run's live curves.
    if preprocessor.spec.task == "regression":
        objective = {"objective": "regression", "metric": ["rmse", "l1"]}
    elif n_classes == 2:
        objective = {"objective": "binary", "metric": ["binary_logloss", "binary_error"]}
    else:
        objective = {"objective": "multiclass", "num_class": n_classes, "metric": ["multi_logloss", "multi_error"]}
    return {**objective, "learning_rate": settings.learning_rate_for(template.kind), "num_leaves": template.num_leaves,
            "min_data_in_leaf": template.min_rows_per_leaf, "feature_fraction": template.feature_fraction,
            "lambda_l2": template.l2_regularization, "seed": settings.seed, "deterministic": True,
            "verbosity": -1, **({"num_threads": settings.num_threads} if settings.num_threads else {})}


def predict_booster(booster: lgb.Booster, rows: EncodedRows, task: str, n_classes: int) -> np.ndarray:
    """Class probabilities [n, k] or target values [n]."""
    output = booster.predict(gbdt_features(rows))
    if task == "classification" and n_classes == 2:
        return np.stack([1 - output, output], axis=1)
    return output


def fit_gbdt(template: GbdtTemplate, preprocessor: Preprocessor, train: EncodedRows, train_target: np.ndarray,
             validation: EncodedRows, validation_target: np.ndarray, settings: TabularFitSettings,
             on_progress: ProgressFn = lambda step, values: None,
             should_stop: Callable[[], bool] = lambda: False) -> FitResult:
    """Boost trees on the training rows, early-stopping on the validation rows."""
    started = time.monotonic()
    task = preprocessor.spec.task
    n_classes = len(preprocessor.classes)
    # Regression targets arrive standardised (the neural templates want that); trees fit raw units.
    if task == "regression":
        train_target = preprocessor.decode_regression(train_target)
        validation_target = preprocessor.decode_regression(validation_target)
    train_known = train_target >= 0 if task == "classification" else np.isfinite(train_target)
    valid_known = validation_target >= 0 if task == "classification" else np.isfinite(validation_target)
    categorical = list(range(preprocessor.numeric_width, preprocessor.numeric_width + len(preprocessor.categorical)))
    train_set = lgb.Dataset(gbdt_features(train)[train_known], train_target[train_known],
                            categorical_feature=categorical, free_raw_data=False)
    valid_set = lgb.Dataset(gbdt_features(validation)[valid_known], validation_target[valid_known],
                            reference=train_set, categorical_feature=categorical)
    stop_reason = ["completed"]
    history: list[dict] = []

    def report(env: lgb.callback.CallbackEnv) -> None:
        values = {f"val_{name}": float(value) for _, name, value, _ in env.evaluation_result_list}
        on_progress(env.iteration + 1, values)
        history.append({"round": env.iteration + 1, **values})
        if should_stop():
            raise Cancelled()
        if settings.time_budget_seconds and time.monotonic() - started >= settings.time_budget_seconds:
            stop_reason[0] = "time_budget"
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callbacks = [report]
    if template.early_stopping_rounds:
        callbacks.append(lgb.early_stopping(template.early_stopping_rounds, first_metric_only=True, verbose=False))
    booster = lgb.train(_params(template, preprocessor, settings), train_set, num_boost_round=template.num_rounds,
                        valid_sets=[valid_set], valid_names=["validation"], callbacks=callbacks)
    best_round = booster.best_iteration or booster.current_iteration()
    if stop_reason[0] == "completed" and len(history) < template.num_rounds:
        stop_reason[0] = "early_stopping"
    # Keep only the trees up to the best round, so saving and predicting agree without extra arguments.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_round))
    output = predict_booster(booster, validation, task, n_classes)
    metrics = (classification_metrics(validation_target, output) if task == "classification"
               else regression_metrics(validation_target, output))
    log.info("gbdt: best round %d of %d (%s), %.1f s", best_round, len(history), stop_reason[0],
             time.monotonic() - started)
    return FitResult(model=booster, metrics=metrics, best_step=best_round, steps=len(history),
                     stop_reason=stop_reason[0], history=history)


def save_booster(booster: lgb.Booster, path: str | Path) -> None:
    """LightGBM's text model format."""
    booster.save_model(str(path))


def load_booster(path: str | Path) -> lgb.Booster:
    """A booster saved by save_booster."""
    return lgb.Booster(model_file=str(path))
