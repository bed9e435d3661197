"""The `gbdt` template: gradient-boosted trees with LightGBM, on the same preprocessed inputs.

Not an epoch loop, but it reports like one: `on_progress(round, values)` once per boosting round
with the validation loss and error, `should_stop()` (raises Cancelled) and the time budget checked
after every round. The booster is driven round by round (Booster.update) and its new trees are
scored on the validation rows a chunk of rounds at a time (boosting_validation.RunningValidation:
cheaper than LightGBM's own validation set, same values); early stopping follows lgb.early_stopping's
rule on those values. The final validation metrics come from the kept round's scores, with no
second prediction pass. The booster is saved in LightGBM's own text format (never pickle).

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

from backend.errors import Cancelled, UserError
from backend.tasks.tabular.boosting_validation import RunningValidation, boosting_objective, both_classes
from backend.tasks.tabular.config import GbdtTemplate, TabularFitSettings
from backend.tasks.tabular.metrics import classification_metrics, regression_metrics
from backend.tasks.tabular.networks import FitResult, ProgressFn
from backend.tasks.tabular.preprocessing import EncodedRows, Preprocessor

log = logging.getLogger(__name__)
CHUNK_SECONDS = 0.5   # the longest a chunk of rounds runs before its rounds are scored and reported


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


def booster_params(template: GbdtTemplate, preprocessor: Preprocessor, settings: TabularFitSettings) -> dict:
    """LightGBM's params of a fit (the objective's, the template's, the seed and the thread count)."""
    objective = boosting_objective(preprocessor.spec.task, len(preprocessor.classes))
    return {**objective.params, "metric": list(objective.metrics),
            "learning_rate": settings.learning_rate_for(template.kind), "num_leaves": template.num_leaves,
            "min_data_in_leaf": template.min_rows_per_leaf, "feature_fraction": template.feature_fraction,
            "lambda_l2": template.l2_regularization, "seed": settings.seed, "deterministic": True,
            "verbosity": -1, **({"num_threads": settings.num_threads} if settings.num_threads else {})}


def categorical_columns(preprocessor: Preprocessor) -> list[int]:
    """The columns of gbdt_features that hold category codes (LightGBM's categorical_feature)."""
    return list(range(preprocessor.numeric_width, preprocessor.numeric_width + len(preprocessor.categorical)))


def predict_booster(booster: lgb.Booster, rows: EncodedRows, task: str, n_classes: int) -> np.ndarray:
    """Class probabilities [n, k] or target values [n]."""
    return _as_output(booster.predict(gbdt_features(rows)), task, n_classes)


def _as_output(output: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """LightGBM's binary output is P(class 1) alone; the app's is both columns."""
    return both_classes(output) if task == "classification" and n_classes == 2 else output


def fit_gbdt(template: GbdtTemplate, preprocessor: Preprocessor, train: EncodedRows, train_target: np.ndarray,
             validation: EncodedRows, validation_target: np.ndarray, settings: TabularFitSettings,
             on_progress: ProgressFn = lambda step, values: None,
             should_stop: Callable[[], bool] = lambda: False) -> FitResult:
    """Boost trees on the training rows, early-stopping on the validation rows."""
    started = time.monotonic()
    task = preprocessor.spec.task
    # Regression targets arrive standardised (the neural templates want that); trees fit raw units.
    if task == "regression":
        train_target = preprocessor.decode_regression(train_target)
        validation_target = preprocessor.decode_regression(validation_target)
    train_x, train_y = _labelled(gbdt_features(train), train_target, task)
    valid_x, valid_y = _labelled(gbdt_features(validation), validation_target, task)
    booster = lgb.Booster(booster_params(template, preprocessor, settings),
                          lgb.Dataset(train_x, train_y, categorical_feature=categorical_columns(preprocessor)))
    scored = RunningValidation(boosting_objective(task, len(preprocessor.classes)), valid_x, valid_y)
    history, stop_reason = _boost(booster, scored, template, settings, started, on_progress, should_stop)
    # Early stopping keeps the best round (also when the time budget ends the fit); without it, every round.
    best_round = scored.best_round if template.early_stopping_rounds and scored.best_round else scored.rounds
    if not best_round:
        raise UserError("LightGBM built no tree on these rows. Check that the input columns vary and that "
                        "there are more training rows than 'fewest rows per leaf'.")
    # Keep only the trees up to the best round, so saving and predicting agree without extra arguments.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_round))
    output = scored.output_of(best_round)
    metrics = (classification_metrics(valid_y, output) if task == "classification"
               else regression_metrics(valid_y, output))
    log.info("gbdt: best round %d of %d (%s), %.1f s", best_round, len(history), stop_reason,
             time.monotonic() - started)
    return FitResult(model=booster, metrics=metrics, best_step=best_round, steps=len(history),
                     stop_reason=stop_reason, history=history)


def _boost(booster: lgb.Booster, scored: RunningValidation, template: GbdtTemplate, settings: TabularFitSettings,
           started: float, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> tuple[list[dict], str]:
    """Boost round by round until the last round, early stopping, the time budget or no split left.

    Rounds are scored on the validation rows a chunk at a time. A chunk never passes the round where
    early stopping could stop (best + patience), so no tree is built that lgb.early_stopping would not
    build; it ends after CHUNK_SECONDS, so progress and the Stop button stay live on slow rounds.
    Returns the history (one entry per round) and the stop reason.
    """
    patience = template.early_stopping_rounds
    history: list[dict] = []
    stop_reason = "completed"
    while scored.rounds < template.num_rounds and stop_reason == "completed":
        chunk = settings.validation_chunk_rounds or scored.max_chunk_rounds()
        last = min(template.num_rounds, scored.rounds + chunk,
                   scored.best_round + patience if patience else template.num_rounds)
        chunk_started, rounds = time.monotonic(), scored.rounds
        while rounds < last:
            if booster.update():   # no split left: LightGBM added no tree (or, at first, constant ones)
                rounds = booster.num_trees() // scored.objective.trees_per_round
                stop_reason = "no_split"
                break
            rounds += 1
            if should_stop():
                raise Cancelled()
            if settings.time_budget_seconds and time.monotonic() - started >= settings.time_budget_seconds:
                stop_reason = "time_budget"
                break
            if time.monotonic() - chunk_started >= CHUNK_SECONDS:
                break
        first = scored.rounds
        for offset, values in enumerate(scored.add_rounds(booster, rounds - first)):
            on_progress(first + offset + 1, values)
            history.append({"round": first + offset + 1, **values})
        if patience and stop_reason == "completed" and scored.rounds - scored.best_round >= patience:
            stop_reason = "early_stopping"
    if stop_reason == "no_split":
        log.info("gbdt: no split left after round %d", scored.rounds)
        stop_reason = "completed"
    return history, stop_reason


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
