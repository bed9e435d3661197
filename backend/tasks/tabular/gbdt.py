"""The `gbdt` template: gradient-boosted trees with LightGBM, on the same preprocessed inputs.

Not an epoch loop, but it reports like one: a LightGBM callback calls `on_progress(round, values)`
after every boosting round with the validation loss, checks `should_stop()` (raises Cancelled) and
the time budget. Early stopping watches the validation split. The booster is saved in LightGBM's
own text format (never pickle).

Inputs: the standardised numbers and missing indicators (trees ignore the scaling) and the
category codes, declared as LightGBM categorical features so it splits on groups of categories.

The final validation metrics are computed from LightGBM's own validation predictions of the best
round, kept while it trains (`ValidationScores`), not from a second prediction pass over the
validation rows (on Adult the fit's time did not measurably change: README, bench_tabular).
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
    """One float32 matrix: numbers and indicators, then category codes (exact in float32 below 2**24).

    float32 because the numbers already are (EncodedRows.numeric): LightGBM reads float32 as it is,
    where float64 would be a second, twice as large copy of the table for the same bins.
    """
    width = rows.numeric.shape[1]
    features = np.empty((len(rows), width + rows.categorical.shape[1]), dtype=np.float32)
    features[:, :width] = rows.numeric
    features[:, width:] = rows.categorical
    return features


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
    return _as_output(booster.predict(gbdt_features(rows)), task, n_classes)


def _as_output(output: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """LightGBM's binary output is P(class 1) alone; the app's is both columns."""
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
    train_x, train_y = _labelled(gbdt_features(train), train_target, task)
    valid_x, valid_y = _labelled(gbdt_features(validation), validation_target, task)
    categorical = list(range(preprocessor.numeric_width, preprocessor.numeric_width + len(preprocessor.categorical)))
    train_set = lgb.Dataset(train_x, train_y, categorical_feature=categorical)
    valid_set = train_set.create_valid(valid_x, valid_y)   # binned with the training set's bins
    stop_reason = ["completed"]
    history: list[dict] = []
    scores = ValidationScores()

    def report(env: lgb.callback.CallbackEnv) -> None:
        values = {f"val_{name}": float(value) for _, name, value, _ in env.evaluation_result_list}
        scores.after_round(env.iteration + 1, env.evaluation_result_list[0][2])
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
    # keep_training_booster: lgb.train would otherwise rebuild the booster from its text once, and
    # the line after this one does so again to keep only the best round's trees.
    booster = lgb.train(_params(template, preprocessor, settings), train_set, num_boost_round=template.num_rounds,
                        valid_sets=[valid_set], valid_names=["validation"], feval=scores.observe,
                        callbacks=callbacks, keep_training_booster=True)
    best_round = booster.best_iteration or booster.current_iteration()
    if stop_reason[0] == "completed" and len(history) < template.num_rounds:
        stop_reason[0] = "early_stopping"
    # Keep only the trees up to the best round, so saving and predicting agree without extra arguments.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_round))
    kept = scores.of_round(best_round)
    output = _as_output(booster.predict(valid_x) if kept is None else kept, task, n_classes)
    metrics = (classification_metrics(valid_y, output) if task == "classification"
               else regression_metrics(valid_y, output))
    log.info("gbdt: best round %d of %d (%s), %.1f s", best_round, len(history), stop_reason[0],
             time.monotonic() - started)
    return FitResult(model=booster, metrics=metrics, best_step=best_round, steps=len(history),
                     stop_reason=stop_reason[0], history=history)


class ValidationScores:
    """LightGBM's validation predictions of the best round so far and of the latest round.

    LightGBM updates the validation rows' scores with every tree it adds; a custom eval function
    (`observe`, passed as lgb.train's feval) is handed them each round as predictions (probabilities
    or values, as Booster.predict gives them). It adds no metric. `after_round` then keeps a copy
    when the first metric (the validation loss early stopping watches) improves, as
    lgb.early_stopping decides "best": strictly lower.
    """

    def __init__(self) -> None:
        self._latest: np.ndarray | None = None   # LightGBM's buffer, rewritten every round
        self._round = 0
        self._best_loss = np.inf
        self._best: tuple[int, np.ndarray] | None = None

    def observe(self, predictions: np.ndarray, _data: lgb.Dataset) -> list:
        self._latest = predictions
        return []

    def after_round(self, round_: int, loss: float) -> None:
        self._round = round_
        if loss < self._best_loss and self._latest is not None:
            self._best_loss = loss
            self._best = (round_, self._latest.copy())

    def of_round(self, round_: int) -> np.ndarray | None:
        """The predictions of `round_` when it is the best or the latest round, else None."""
        if self._best is not None and self._best[0] == round_:
            return self._best[1]
        if round_ == self._round and self._latest is not None:
            return self._latest.copy()
        return None


def _labelled(features: np.ndarray, target: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a usable target (a known class, or a finite value); no copy when all are."""
    known = target >= 0 if task == "classification" else np.isfinite(target)
    return (features, target) if known.all() else (features[known], target[known])


def save_booster(booster: lgb.Booster, path: str | Path) -> None:
    """LightGBM's text model format."""
    booster.save_model(str(path))


def load_booster(path: str | Path) -> lgb.Booster:
    """A booster saved by save_booster."""
    return lgb.Booster(model_file=str(path))
