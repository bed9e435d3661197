"""A neural table run's time budget covers the final evaluation and the permutation importance too."""

import time

import pytest

from backend.tasks.tabular import model_io
from backend.tasks.tabular.budget import IMPORTANCE_SHARE, MIN_IMPORTANCE_ROWS, SAFETY, plan_budget
from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.config import FtTransformerTemplate, TabularFitSettings
from backend.tasks.tabular.fitting import fit_template
from backend.tasks.tabular.splitting import split_table
from tests.backend.tasks.tabular.conftest import mixed_table

INPUTS = {"x": "numeric", "noise": "numeric", "color": "categorical", "flag": "boolean", "when": "datetime"}


def test_no_budget_means_no_limit_and_the_full_importance_sample():
    plan = plan_budget(0, seconds_per_row=1.0, validation_rows=10_000, columns=14, repeats=3)
    assert plan.training_seconds == 0 and plan.importance_rows == model_io.IMPORTANCE_ROWS


def test_a_fast_model_keeps_the_full_sample_and_training_gets_the_rest():
    plan = plan_budget(150, seconds_per_row=1e-5, validation_rows=6_513, columns=14, repeats=3, setup_seconds=2)
    assert plan.importance_rows == model_io.IMPORTANCE_ROWS
    expected_reserve = SAFETY * 1e-5 * (6_513 + 2_000 * 43)
    assert plan.reserved_seconds == pytest.approx(expected_reserve)
    assert plan.training_seconds == pytest.approx(150 - 2 - expected_reserve)


def test_a_slow_model_reads_fewer_rows_so_importance_fits_its_share():
    # 1.3 ms per row: ft-transformer on Adult with the machine busy. 2,000 rows would take ~140 s.
    plan = plan_budget(150, seconds_per_row=1.3e-3, validation_rows=6_513, columns=14, repeats=3)
    assert MIN_IMPORTANCE_ROWS <= plan.importance_rows < model_io.IMPORTANCE_ROWS
    assert SAFETY * 1.3e-3 * plan.importance_rows * 43 <= IMPORTANCE_SHARE * 150
    assert plan.training_seconds + plan.reserved_seconds == pytest.approx(150)
    assert plan.training_seconds > 0


def test_training_keeps_a_share_when_the_estimate_eats_the_whole_budget():
    plan = plan_budget(10, seconds_per_row=0.1, validation_rows=5_000, columns=14, repeats=3)
    assert plan.importance_rows == MIN_IMPORTANCE_ROWS and plan.training_seconds == pytest.approx(1.0)


def test_a_run_with_a_small_budget_ends_within_it(monkeypatch):
    """Predictions made slow (0.25 ms a row): importance on the whole 1,200-row validation split would
    take ~5 s after a 4 s budget; the run must leave room for it and end near the budget."""
    spec = TableSpec(target="label", task="classification", inputs=INPUTS)
    template = FtTransformerTemplate(token_size=16, num_heads=2, num_layers=1)
    # A process's first fit pays one-time costs (lazy imports, torch's first calls): not this test's subject.
    fit_template(template, spec, *split_table(mixed_table(rows=200), spec, seed=0),
                 TabularFitSettings(epochs=1, time_budget_seconds=1e-9))
    real_predict = model_io.predict_network

    def slow_predict(model, rows, task):
        time.sleep(0.25e-3 * len(rows))
        return real_predict(model, rows, task)

    monkeypatch.setattr(model_io, "predict_network", slow_predict)
    train, validation = split_table(mixed_table(rows=6_000), spec, seed=0)
    settings = TabularFitSettings(epochs=100, batch_size=64, early_stopping_patience=0, seed=0,
                                  time_budget_seconds=4.0)
    started = time.monotonic()
    model, result = fit_template(template, spec, train, validation, settings)
    elapsed = time.monotonic() - started
    assert result.stop_reason == "time_budget"
    assert set(result.metrics["feature_importance"]) == set(INPUTS)
    assert elapsed <= 4.0 + 2.0, f"the run took {elapsed:.1f} s for a 4 s budget"
