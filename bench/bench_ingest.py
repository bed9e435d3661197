"""Benchmark: prepare_dataset on a 1,000,000-row CSV (~100 MB) against a plain pandas.read_csv.

Not a test. Run from the project root:  python bench/bench_ingest.py [--rows N] [--repeat R]

Each measurement runs in a fresh subprocess, so that peak memory is that process's own peak RSS
(VmHWM from /proc, which counts pyarrow's allocations that tracemalloc cannot see). The reported
"net" peak subtracts the RSS after imports, i.e. the memory the operation itself needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
from pathlib import Path

def rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

import pandas as pd
from backend.data import IngestOptions, prepare_dataset
from backend.reading import read_arrow
kind, path = sys.argv[1], sys.argv[2]
before = rss_kb("VmRSS")
start = time.perf_counter()
if kind == "pandas.read_csv":
    rows = len(pd.read_csv(path))
elif kind == "pandas.read_csv(engine=pyarrow)":
    rows = len(pd.read_csv(path, engine="pyarrow"))
elif kind == "read_arrow (our reader only)":
    rows = read_arrow(Path(path), max_bytes=1 << 40, max_rows=1 << 40).table.num_rows
else:
    prepared = prepare_dataset(path, IngestOptions(), max_bytes=1 << 40, max_rows=1 << 40)
    rows = prepared.rows
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds, "baseline_kb": before, "peak_kb": rss_kb("VmHWM")}))
"""

KINDS = ("pandas.read_csv", "pandas.read_csv(engine=pyarrow)", "read_arrow (our reader only)", "prepare_dataset")


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write a text,label CSV: ~95-character sentences, some with commas and quotes, 4 classes."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(5000)] + ["good", "bad,", "\"quoted\"", "it's", "ok."])
    chunk = 100_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            words = vocabulary[rng.integers(0, len(vocabulary), size=(n, 16))]
            texts = [" ".join(row) for row in words.tolist()]
            labels = rng.choice(["sports", "politics", "science", "arts"], size=n)
            pd.DataFrame({"text": texts, "label": labels}).to_csv(handle, index=False, header=start == 0)


def measure(kind: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.csv"
        make_csv(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        results = {}
        for _ in range(args.repeat):  # interleaved, so drift in machine load hits every kind alike
            for kind in KINDS:
                results.setdefault(kind, []).append(measure(kind, path))
    table = {}
    for kind, runs in results.items():
        table[kind] = {
            "rows": runs[0]["rows"],
            "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
            "seconds_min": round(min(r["seconds"] for r in runs), 3),
            "peak_rss_mb": round(max(r["peak_kb"] for r in runs) / 1024, 1),
            "net_peak_mb": round(max(r["peak_kb"] - r["baseline_kb"] for r in runs) / 1024, 1),
        }
    ours, reader, pandas_row = (table["prepare_dataset"], table["read_arrow (our reader only)"],
                                table["pandas.read_csv"])
    summary = {
        "file_mb": round(size_mb, 1), "rows": args.rows, "repeat": args.repeat, "cpus": os.cpu_count(),
        "results": table,
        "time_ratio_vs_pandas": round(ours["seconds_median"] / pandas_row["seconds_median"], 3),
        "reader_time_ratio_vs_pandas": round(reader["seconds_median"] / pandas_row["seconds_median"], 3),
        "net_memory_ratio_vs_pandas": round(ours["net_peak_mb"] / pandas_row["net_peak_mb"], 3),
        "net_memory_ratio_vs_file": round(ours["net_peak_mb"] / size_mb, 3),
        "peak_rss_ratio_vs_file": round(ours["peak_rss_mb"] / size_mb, 3),
        "targets": {"time_ratio_vs_pandas": "<= 1.0", "net_memory_ratio_vs_file": "< 3.0"},
    }
    print(f"{'measurement':34} {'rows':>9} {'median s':>9} {'min s':>7} {'net peak MB':>12} {'peak RSS MB':>12}")
    for kind, row in table.items():
        print(f"{kind:34} {row['rows']:>9} {row['seconds_median']:>9} {row['seconds_min']:>7} "
              f"{row['net_peak_mb']:>12} {row['peak_rss_mb']:>12}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
