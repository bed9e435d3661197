"""A neural table run's time budget covers the work after training too.

The shared loop stops training when the budget is spent; after it come one more pass over the
validation split and the permutation importance (n_columns x repeats + 1 predictions of up to
IMPORTANCE_ROWS rows). For ft-transformer on Adult with a 150 s budget the run took 219 s in all
(2026-12-01, importance on all 6,513 rows, an idle machine) and 284 s (2026-12-02, on 2,000 rows,
load average 11-14 on 2 cores). So before training the run times one prediction of a few validation
rows (the path importance takes: raw rows -> preprocessing -> network), estimates that work from
it, and gives training only what is left; importance reads fewer rows when even those would take
more than IMPORTANCE_SHARE of the budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from backend.tasks.tabular.model_io import IMPORTANCE_ROWS

log = logging.getLogger(__name__)

IMPORTANCE_SHARE = 0.2      # the most of the budget permutation importance may take
MIN_IMPORTANCE_ROWS = 200   # fewer rows rank columns too noisily; below this the run overshoots instead
MIN_TRAINING_SHARE = 0.1    # training keeps at least this share, whatever the estimate says
SAFETY = 1.25               # the estimate's margin: a timing of a few rows is no more precise than that
TIMED_ROWS = 256


@dataclass(frozen=True)
class BudgetPlan:
    """How a run's time budget is shared out (seconds)."""

    training_seconds: float   # what the training loop's own budget becomes (0 = no limit)
    importance_rows: int      # validation rows the permutation importance reads
    reserved_seconds: float   # estimated time of the final validation pass and the importance


def plan_budget(budget: float, seconds_per_row: float, validation_rows: int, columns: int, repeats: int,
                setup_seconds: float = 0.0) -> BudgetPlan:
    """Share `budget` (0 = none) between training and the work after it, at `seconds_per_row` per prediction."""
    rows = min(IMPORTANCE_ROWS, validation_rows)
    if not budget:
        return BudgetPlan(0.0, rows, 0.0)
    passes = columns * repeats + 1   # one unshuffled score, then each column shuffled `repeats` times
    per_row = SAFETY * seconds_per_row
    affordable = int(IMPORTANCE_SHARE * budget / max(per_row * passes, 1e-12))
    rows = max(min(rows, affordable), min(MIN_IMPORTANCE_ROWS, rows))
    reserved = per_row * (validation_rows + rows * passes)
    training = max(budget - setup_seconds - reserved, MIN_TRAINING_SHARE * budget)
    if training + setup_seconds + reserved > budget * 1.01:
        log.warning("a time budget of %.0f s is too short for this table: training keeps %.0f s, and the "
                    "evaluation and importance after it (about %.0f s) will run past it", budget, training, reserved)
    return BudgetPlan(training, rows, reserved)


def seconds_per_row(predict: Callable[[pd.DataFrame], object], validation: pd.DataFrame) -> float:
    """Seconds one validation row takes through `predict` (the slower of two timed calls after a warm-up)."""
    sample = validation.head(TIMED_ROWS)
    if sample.empty:
        return 0.0
    predict(sample)   # first call: lazy initialisation, not the steady cost
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        predict(sample)
        timings.append(time.perf_counter() - started)
    return max(timings) / len(sample)
