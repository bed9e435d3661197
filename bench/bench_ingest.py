"""Benchmark: our ingestion of a 1,000,000-row CSV (~95 MB) against a plain pandas.read_csv.

Not a test. Run from the project root:  python bench/bench_ingest.py [--rows N] [--repeat R]

Measured, each in a fresh subprocess:
- pandas.read_csv(path): the baseline of the issue, called as a person would, so with pandas'
  default C engine (engine="c" is passed explicitly to make that visible). pandas 3 stores the
  strings as Arrow-backed `str` columns. The pyarrow engine is shown for reference only.
- read_arrow: our reader alone (encoding, delimiter and quoting detection, then pyarrow's parser).
- prepare_dataset: read + pick columns + clean + validate + dedupe + split + report + hash.
- ingest: prepare_dataset + write train/validation Parquet + the DB row (a temporary home).
- floor: the least work any ingest must do (read, sha256, fastest parse, duplicate fingerprints,
  uncompressed Parquet), each step at its cheapest. Its CPU seconds divided by the cores is the
  shortest wall time any ingest could reach on this machine, even if every step ran perfectly in
  parallel; the bench reports that bound against pandas' wall time.

Each measurement runs in a fresh subprocess, so that peak memory is that process's own peak RSS
(VmHWM from /proc, which counts pyarrow's allocations that tracemalloc cannot see). The reported
"net" peak subtracts the RSS after imports, i.e. the memory the operation itself needed. Kinds
are interleaved across repeats, so drift in machine load hits each alike; the median is reported.
CPU seconds (user + system, all threads) are reported too: on a shared machine they move much
less with other people's load than wall time does.
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
import json, resource, sys, tempfile, time
from pathlib import Path

def rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

import pandas as pd
from backend.data.store import IngestOptions, ingest, prepare_dataset
from backend.data.reading import read_arrow
from backend.settings import Settings
from storage.database import make_engine, make_sessions, migrate
from storage.repository import Repository
kind, path = sys.argv[1], sys.argv[2]
if kind == "ingest":  # the DB is made before the clock starts: that is app start-up, not ingestion
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="bench-ingest-")), _env_file=None,
                        max_upload_mb=1 << 20, max_rows=1 << 40)
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    repo = Repository(make_sessions(engine))
before, cpu_before = rss_kb("VmRSS"), cpu_seconds()
start = time.perf_counter()
if kind == "pandas.read_csv":
    rows = len(pd.read_csv(path, engine="c"))
elif kind == "pandas.read_csv(engine=pyarrow)":
    rows = len(pd.read_csv(path, engine="pyarrow"))
elif kind == "read_arrow":
    rows = read_arrow(Path(path), max_bytes=1 << 40, max_rows=1 << 40).table.num_rows
elif kind == "prepare_dataset":
    rows = prepare_dataset(path, IngestOptions(), max_bytes=1 << 40, max_rows=1 << 40).rows
elif kind == "floor":
    # The least any ingest must do, each step in its cheapest form, one after the other: read the
    # bytes, sha256 them (the content hash), parse with pyarrow's fastest settings (unsafe for
    # quoted line breaks, so a lower bound), fingerprint the texts for exact duplicates, write
    # uncompressed Parquet without dictionaries or statistics. No cleaning, split or report.
    import hashlib, pyarrow as pa, pyarrow.csv as pa_csv, pyarrow.parquet as pq
    from backend.data.report import text_codes
    data = Path(path).read_bytes()
    hashlib.sha256(data).hexdigest()
    table = pa_csv.read_csv(pa.BufferReader(data), parse_options=pa_csv.ParseOptions(newlines_in_values=False),
                            convert_options=pa_csv.ConvertOptions(column_types={"text": pa.string(), "label": pa.string()}))
    del data
    text_codes(table["text"])
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / "floor.parquet", compression="none", use_dictionary=False,
                       write_statistics=False)
    rows = table.num_rows
else:
    rows = ingest(path, IngestOptions(), settings=settings, repo=repo).dataset.rows
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds, "cpu_seconds": cpu_seconds() - cpu_before,
                  "baseline_kb": before, "peak_kb": rss_kb("VmHWM")}))
if kind == "ingest":
    import shutil
    engine.dispose()
    shutil.rmtree(settings.home, ignore_errors=True)
"""

KINDS = ("pandas.read_csv", "pandas.read_csv(engine=pyarrow)", "read_arrow", "prepare_dataset", "ingest", "floor")


SHAPES = ("plain", "duplicates", "templated")


def make_csv(path: Path, rows: int, seed: int = 0, shape: str = "plain") -> None:
    """Write a text,label CSV with 4 classes.

    plain: ~95-character sentences, some with commas and quotes. duplicates: the same, but every
    second row repeats the text of the row before (with a label of its own, so most are
    conflicting duplicates). templated: 95-character texts identical except for digits in
    the bytes that duplicate fingerprints do not sample (spam that differs in a phone number), the
    worst case for duplicate detection (every text is compared, then ranked)."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(5000)] + ["good", "bad,", "\"quoted\"", "it's", "ok."])
    # Sampled at 95 characters: bytes 0-15, 21-28, 43-50, 65-72, 87-94 (see text_bytes.fingerprints).
    template = list("Congratulations!##### You won## a prize: call now to claim it before the offer ends today")
    template += ["."] * (95 - len(template))
    holes = [i for i, char in enumerate(template) if char == "#"]
    chunk = 100_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            if shape == "templated":
                texts = []
                for number in range(start, start + n):
                    digits = f"{number:0{len(holes)}d}"
                    for hole, digit in zip(holes, digits):
                        template[hole] = digit
                    texts.append("".join(template))
            else:
                words = vocabulary[rng.integers(0, len(vocabulary), size=(n, 16))]
                texts = [" ".join(row) for row in words.tolist()]
                if shape == "duplicates":
                    texts[1::2] = texts[0::2][: n // 2]
            labels = rng.choice(["sports", "politics", "science", "arts"], size=n)
            pd.DataFrame({"text": texts, "label": labels}).to_csv(handle, index=False, header=start == 0)


def measure(kind: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape", choices=SHAPES, default="plain", help=make_csv.__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated subset of: " + ", ".join(KINDS) + " (pandas.read_csv always runs)")
    args = parser.parse_args()
    kinds = ["pandas.read_csv"] + [k for k in KINDS if k in args.kinds.split(",") and k != "pandas.read_csv"]
    loads = [load_average()]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.csv"
        make_csv(path, args.rows, shape=args.shape)
        size_mb = path.stat().st_size / 2**20
        results = {}
        for _ in range(args.repeat):  # interleaved, so drift in machine load hits every kind alike
            for kind in kinds:
                results.setdefault(kind, []).append(measure(kind, path))
            loads.append(load_average())
    table = {}
    for kind, runs in results.items():
        table[kind] = {
            "rows": runs[0]["rows"],
            "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
            "seconds_min": round(min(r["seconds"] for r in runs), 3),
            "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in runs), 3),
            "peak_rss_mb": round(max(r["peak_kb"] for r in runs) / 1024, 1),
            "net_peak_mb": round(max(r["peak_kb"] - r["baseline_kb"] for r in runs) / 1024, 1),
        }
    pandas_row = table["pandas.read_csv"]

    def ratios(kind: str) -> dict:
        row = table[kind]
        return {"time_vs_pandas": round(row["seconds_median"] / pandas_row["seconds_median"], 2),
                "cpu_vs_pandas": round(row["cpu_seconds_median"] / pandas_row["cpu_seconds_median"], 2),
                "net_memory_vs_file": round(row["net_peak_mb"] / size_mb, 2)}

    summary = {
        "file_mb": round(size_mb, 1), "rows": args.rows, "shape": args.shape, "repeat": args.repeat, "cpus": os.cpu_count(),
        "cpu_model": cpu_model(), "load_average_1_5_15min": loads, "results": table,
        "ratios": {kind: ratios(kind) for kind in kinds},
        "targets": {"time_vs_pandas": "<= 1.0", "net_memory_vs_file": "< 3.0"},
    }
    print(f"{'measurement':32} {'median s':>9} {'min s':>7} {'CPU s':>7} {'net peak MB':>12} {'peak RSS MB':>12}"
          f" {'time/pandas':>12} {'net peak/file':>14}")
    for kind, row in table.items():
        ratio = summary["ratios"][kind]
        print(f"{kind:32} {row['seconds_median']:>9} {row['seconds_min']:>7} {row['cpu_seconds_median']:>7} "
              f"{row['net_peak_mb']:>12} {row['peak_rss_mb']:>12} {ratio['time_vs_pandas']:>12} "
              f"{ratio['net_memory_vs_file']:>14}")
    if "floor" in table:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        bound = table["floor"]["cpu_seconds_median"] / cores
        summary["floor"] = {"cpu_seconds": table["floor"]["cpu_seconds_median"], "cores": cores,
                            "shortest_possible_wall_s": round(bound, 3),
                            "shortest_possible_vs_pandas": round(bound / pandas_row["seconds_median"], 2)}
        print(f"floor: {table['floor']['cpu_seconds_median']} CPU s of unavoidable work / {cores} cores = at least "
              f"{bound:.3f} s wall for any ingest, {summary['floor']['shortest_possible_vs_pandas']}x pandas' wall time")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
