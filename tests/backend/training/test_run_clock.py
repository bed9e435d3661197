"""RunClock: time on a run across resumes, the time budget, and the ETA."""

import pytest

from backend.training import run_clock
from backend.training.run_clock import RunClock


@pytest.fixture
def now(monkeypatch):
    """A settable monotonic clock."""
    current = [100.0]
    monkeypatch.setattr(run_clock.time, "monotonic", lambda: current[0])
    return current


def test_spent_counts_the_sessions_before_a_resume(now):
    clock = RunClock(global_step=50, elapsed_seconds=30.0, budget_seconds=0)
    now[0] += 12.0
    assert clock.spent() == pytest.approx(42.0)
    assert clock.budget_spent() is False  # no budget: never spent


def test_eta_is_this_sessions_pace_over_the_steps_left(now):
    clock = RunClock(global_step=50, elapsed_seconds=30.0, budget_seconds=0)
    now[0] += 10.0  # 10 steps of this session in 10 s (the 50 before the resume do not count)
    assert clock.eta(step=60, total_steps=100) == pytest.approx(40.0)


def test_eta_is_capped_by_what_is_left_of_the_budget(now):
    clock = RunClock(global_step=0, elapsed_seconds=0.0, budget_seconds=15.0)
    now[0] += 10.0
    assert clock.eta(step=10, total_steps=100) == pytest.approx(5.0)  # 90 s at this pace, 5 s of budget
    assert clock.budget_spent() is False
    now[0] += 5.0
    assert clock.budget_spent() is True and clock.eta(step=15, total_steps=100) == 0.0
