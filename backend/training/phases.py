"""Where a run's time goes: set-up, steps, evaluation, checkpoints, saving the best model, finishing.

The training core measures the whole fit as "steps"; the strategies mark evaluation, checkpoints
and saving inside it. A phase measured inside another is taken out of the outer one, so the
phases add up to the run's wall time and "steps" is what is left: the optimizer steps and the data
they read. Stored with the run's metrics (`timing_seconds`) and shown in the Runs tab, so anyone can
see which part of a slow run to work on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PHASES = ("setup", "steps", "evaluation", "checkpoints", "saving", "finishing")
METRICS_KEY = "timing_seconds"  # where the breakdown sits in a run's metrics


class PhaseTimes:
    """Seconds per phase; `measure` nests, and an inner phase's time is not counted in the outer one."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._inner = [0.0]  # per open phase: seconds spent in phases opened inside it

    @contextlib.contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        if phase not in self.seconds:
            raise ValueError(f"unknown phase '{phase}'; phases are {', '.join(PHASES)}")
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            self.seconds[phase] += elapsed - inner
            self._inner[-1] += elapsed  # the enclosing phase (or the run) spent this much in here

    def as_metrics(self) -> dict[str, float]:
        """The breakdown as stored with a run: seconds per phase, rounded to milliseconds, and the total."""
        breakdown = {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}
        return {**breakdown, "total": round(sum(self.seconds.values()), 3)}


def describe(timing: dict | None) -> str:
    """'setup 3.1 s (6%) · steps 40.2 s (80%) · ...' for the Runs tab; '' when the run has no breakdown."""
    if not isinstance(timing, dict) or not timing.get("total"):
        return ""
    total = float(timing["total"])
    parts = [f"{phase} {float(timing[phase]):.1f} s ({100 * float(timing[phase]) / total:.0f}%)"
             for phase in PHASES if isinstance(timing.get(phase), (int, float)) and timing[phase] > 0]
    return " · ".join(parts)
