"""The per-run time breakdown: nested phases are taken out of the phase around them."""

from __future__ import annotations

import time

import pytest

from backend.training.phases import PhaseTimes, describe


class FakeClock:
    """perf_counter that moves only when the test says."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_inner_phase_is_not_counted_twice(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    phases = PhaseTimes()
    with phases.measure("steps"):
        clock.now += 5
        with phases.measure("evaluation"):
            clock.now += 10
            with phases.measure("saving"):
                clock.now += 2
        clock.now += 1
    assert phases.seconds["steps"] == 6 and phases.seconds["evaluation"] == 10 and phases.seconds["saving"] == 2
    assert phases.as_metrics()["total"] == 18  # the wall time of the outer phase


def test_a_phase_that_raises_still_counts_and_unknown_phases_are_refused():
    phases = PhaseTimes()
    with pytest.raises(RuntimeError), phases.measure("checkpoints"):
        time.sleep(0.02)
        raise RuntimeError("disk full")
    assert phases.seconds["checkpoints"] >= 0.02
    with pytest.raises(ValueError, match="unknown phase 'eval'"), phases.measure("eval"):
        pass


def test_description_gives_seconds_and_shares_and_skips_empty_phases():
    text = describe({"setup": 1.0, "steps": 3.0, "evaluation": 0.0, "total": 4.0})
    assert text == "setup 1.0 s (25%) · steps 3.0 s (75%)"
    assert describe(None) == "" and describe({"total": 0}) == ""
