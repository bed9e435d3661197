"""The validation scores of a growing LightGBM booster, round by round, from its new trees' leaves.

Why not LightGBM's own validation set (lgb.train's valid_sets): it walks the *binned* validation
rows through every new tree inside Booster.update, then computes the metrics and copies the scores
into Python every round. On Adult (6,513 validation rows, 1 thread) that added about a third to the
fit of a plain LGBMClassifier() (README, bench_tabular). Here the new trees of a few rounds are
walked at once with one Booster.predict(pred_leaf=True) on the raw validation rows, which is the
path a saved model's predictions take; each tree's leaf values are added to running raw scores, and
the metrics of every round come from those scores with numpy, as LightGBM defines them. Every
round's values equal LightGBM's own (tests/backend/tasks/tabular/test_boosting_validation.py).

Shapes: n validation rows, r rounds in a chunk, k trees per round (the number of classes for
multiclass, else 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import lightgbm as lgb
import numpy as np
from scipy.special import expit

EPSILON = 1e-15   # LightGBM's kEpsilon: a log loss never takes the log of less than this
# Most score cells (n * r * k) a chunk holds at once: 4M doubles are 32 MB, a few times over in
# temporaries; a table with millions of validation rows then scores one or two rounds at a time.
MAX_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class BoostingObjective:
    """A LightGBM objective and the two metrics reported each round; the first one is minimised."""

    params: dict                 # objective (and num_class) for LightGBM's params
    metrics: tuple[str, str]     # LightGBM's metric names: the loss early stopping watches, then one more
    trees_per_round: int
    to_output: Callable[[np.ndarray], np.ndarray]   # raw scores [k, n] -> probabilities [n, classes] or values [n]


def boosting_objective(task: str, n_classes: int) -> BoostingObjective:
    """The objective for a task; the second metric is the share wrong, or the mean absolute error."""
    if task == "regression":
        return BoostingObjective({"objective": "regression"}, ("rmse", "l1"), 1, lambda raw: raw[0])
    if n_classes == 2:
        return BoostingObjective({"objective": "binary"}, ("binary_logloss", "binary_error"), 1,
                                 lambda raw: both_classes(expit(raw[0])))
    return BoostingObjective({"objective": "multiclass", "num_class": n_classes}, ("multi_logloss", "multi_error"),
                             n_classes, lambda raw: _softmax(raw.T))


def both_classes(positive: np.ndarray) -> np.ndarray:
    """LightGBM's binary output, P(class 1) [n], as the app's [n, 2]: P(class 0), P(class 1)."""
    return np.stack([1.0 - positive, positive], axis=-1)


def _softmax(raw: np.ndarray) -> np.ndarray:
    exp = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def round_metrics(metrics: tuple[str, str], scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each round's two metric values [r, 2] from raw scores [r, k, n], as LightGBM computes them."""
    if metrics[0] == "rmse":
        error = scores[:, 0] - target
        return np.stack([np.sqrt(np.mean(error ** 2, axis=1)), np.mean(np.abs(error), axis=1)], axis=1)
    if metrics[0] == "binary_logloss":
        positive = expit(scores[:, 0])   # 1 / (1 + exp(-s)), LightGBM's sigmoid, in one pass
        is_positive = target > 0
        of_truth = np.where(is_positive, positive, 1.0 - positive)
        np.log(np.maximum(of_truth, EPSILON, out=of_truth), out=of_truth)
        # LightGBM's binary_error: a probability <= 0.5 predicts class 0.
        wrong = np.count_nonzero((positive <= 0.5) == is_positive, axis=1) / len(target)
        return np.stack([-np.mean(of_truth, axis=1), wrong], axis=1)
    probabilities = _softmax(np.moveaxis(scores, 1, 2))                                     # [r, n, k]
    of_truth = np.take_along_axis(probabilities, target.astype(np.intp)[None, :, None], axis=2)   # [r, n, 1]
    # LightGBM's multi_error (top 1): wrong when any other class scores at least the true one's probability.
    wrong = (probabilities >= of_truth).sum(axis=2) > 1
    return np.stack([np.mean(-np.log(np.maximum(of_truth[..., 0], EPSILON)), axis=1), np.mean(wrong, axis=1)],
                    axis=1)


class RunningValidation:
    """Raw validation scores of the rounds scored so far, and the best round's (lowest first metric).

    "Best" is decided as lgb.early_stopping does: a round is better only when its loss is strictly
    lower, so the earliest of equal rounds is kept.
    """

    def __init__(self, objective: BoostingObjective, rows: np.ndarray, target: np.ndarray):
        self.objective = objective
        self.rows = rows                     # the validation features, as the booster predicts them
        self.target = target
        self.scores = np.zeros((objective.trees_per_round, len(rows)))   # raw scores [k, n] after `rounds`
        self.rounds = 0
        self.best_round = 0
        self.best_loss = np.inf
        self._best_scores = self.scores

    def max_chunk_rounds(self) -> int:
        """Most rounds one `add_rounds` call should score (bounded by MAX_CHUNK_CELLS)."""
        return max(1, MAX_CHUNK_CELLS // max(1, len(self.rows) * self.objective.trees_per_round))

    def add_rounds(self, booster: lgb.Booster, rounds: int) -> list[dict[str, float]]:
        """Score the booster's next `rounds` rounds; their metric values, in order, as {"val_<metric>": value}."""
        if rounds <= 0:
            return []
        k, n = self.objective.trees_per_round, len(self.rows)
        leaves = booster.predict(self.rows, start_iteration=self.rounds, num_iteration=rounds, pred_leaf=True)
        leaves = np.ascontiguousarray(np.asarray(leaves).reshape(n, rounds * k).T)    # [trees, n], trees in order
        first_tree = self.rounds * k
        scores = np.empty((rounds, k, n))
        running = self.scores.copy()
        # Tree after tree onto the running scores, in LightGBM's order: the same sums to the last bit
        # as its predictions ((s + a) + b can differ from s + (a + b), and then tied probabilities
        # would no longer tie). Only the leaves some validation row reaches are looked up.
        for tree, reached in enumerate(leaves):
            values = np.array([booster.get_leaf_output(first_tree + tree, leaf) for leaf in range(reached.max() + 1)])
            running[tree % k] += values[reached]
            scores[tree // k, tree % k] = running[tree % k]
        metric_values = round_metrics(self.objective.metrics, scores, self.target)
        for offset, loss in enumerate(metric_values[:, 0].tolist()):
            if loss < self.best_loss:
                self.best_loss, self.best_round = loss, self.rounds + offset + 1
                self._best_scores = scores[offset].copy()
        self.scores = running   # the last round's scores, already summed
        self.rounds += rounds
        names = [f"val_{name}" for name in self.objective.metrics]
        return [{names[0]: loss, names[1]: other} for loss, other in metric_values.tolist()]

    def output_of(self, round_: int) -> np.ndarray:
        """Probabilities [n, classes] or values [n] of the best or the latest round scored."""
        if round_ == self.best_round:
            return self.objective.to_output(self._best_scores)
        if round_ == self.rounds:
            return self.objective.to_output(self.scores)
        raise ValueError(f"round {round_} is neither the best ({self.best_round}) nor the latest ({self.rounds})")
