"""Where a benchmark's figures go: bench/results/<stem>-<local time>.json, and the same JSON on stdout."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, report: dict, indent: int = 2) -> Path:
    """Write `report` as bench/results/<stem>-<YYYYmmdd-HHMMSS>.json, print it, return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=indent, default=str)
    out = RESULTS / f"{stem}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return out
