"""Time spent on a training run across resumes: what its time budget, progress and ETA are measured in."""

from __future__ import annotations

import time


class RunClock:
    """Seconds trained on one run (sessions before a resume included) and the ETA of its remaining steps."""

    def __init__(self, global_step: int, elapsed_seconds: float, budget_seconds: float) -> None:
        self.session_start, self.session_first_step = time.monotonic(), global_step
        self.elapsed_before, self.budget = elapsed_seconds, budget_seconds

    def spent(self) -> float:
        """Seconds of training on this run, sessions before a resume included."""
        return self.elapsed_before + time.monotonic() - self.session_start

    def budget_spent(self) -> bool:
        """Whether a time budget is set and used up."""
        return bool(self.budget) and self.spent() >= self.budget

    def eta(self, step: int, total_steps: int) -> float:
        """Seconds left: this session's pace over the steps left, capped by what is left of the budget."""
        per_step = (time.monotonic() - self.session_start) / max(step - self.session_first_step, 1)
        eta = per_step * (total_steps - step)
        return min(eta, max(self.budget - self.spent(), 0.0)) if self.budget else eta
