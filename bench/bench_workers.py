"""Benchmark: what a worker process costs a run, launch -> first optimizer step, vs the thread launcher.

Not a test. Run from the project root:

    python bench/bench_workers.py [--repeats 2] [--processes 1]

For each launcher (thread, then process) and each repeat: a fresh temporary home with a tiny rule
dataset (64 rows), a 1-epoch 32-wide LSTM run with a progress row every step; the clock starts
when the run is handed to the runner (`run_job`, as the CLI's `train` does) and stops at the time
stored on its first `train_loss` row (step 1) and when the run has ended. On a GPU host, also
`--gpus-per-run 0` (all GPUs) vs 1 to compare samples/s (the run's `samples_per_second` rows).
Results: bench/results/workers-<timestamp>.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def one_run(launcher: str, processes: int, gpus_per_run: int) -> dict:
    """Train one tiny run with `launcher`; seconds to its first step and to its end."""
    from backend.jobs.runner import JobRunner
    from backend.settings import Settings
    from storage.database import make_engine, make_sessions, migrate
    from storage.repository import Repository
    from tests.backend.training_fixtures import lstm_config, make_dataset, rule_rows

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as home:
        settings = Settings(home=Path(home), launcher=launcher, cpu_processes_per_run=processes,
                            gpus_per_run=gpus_per_run, _env_file=None)
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        repo = Repository(make_sessions(engine))
        record = make_dataset(settings.datasets_dir / "rule", rule_rows(64, seed=1), rule_rows(16, seed=2))
        dataset_id = repo.add_dataset(name="rule", task="text-classification", content_hash="b" * 64,
                                      path=record.path, text_column="text", label_column="label", rows=record.rows,
                                      train_rows=record.train_rows, validation_rows=record.validation_rows,
                                      labels=record.labels, classes=record.classes, report={}).id
        runner = JobRunner(repo, settings)
        run_id = runner.submit(lstm_config(dataset_id=dataset_id, epochs=1, log_every_steps=1))
        started = datetime.now(timezone.utc).replace(tzinfo=None)
        clock = time.perf_counter()
        run = runner.run_job(run_id)
        total = time.perf_counter() - clock
        first = repo.get_metrics(run_id, ["train_loss"])[0].time
        speeds = [m.value for m in repo.get_metrics(run_id, ["samples_per_second"])]
        engine.dispose()
        return {"status": run.status, "first_step_s": round((first - started).total_seconds(), 2),
                "total_s": round(total, 2), "samples_per_second": round(statistics.median(speeds), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1, help="CPU processes per run (process launcher)")
    parser.add_argument("--gpus-per-run", type=int, default=1)
    args = parser.parse_args()
    from bench.hardware import device_facts

    results = {"machine": device_facts(), "date": time.strftime("%Y-%m-%d"), "runs": {}}
    for launcher in ("thread", "process"):
        results["runs"][launcher] = [one_run(launcher, args.processes, args.gpus_per_run) for _ in range(args.repeats)]
    out = ROOT / "bench" / "results" / f"workers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("| launcher | launch -> first step (s) | launch -> end (s) | status |")
    print("|---|---|---|---|")
    for launcher, runs in results["runs"].items():
        print(f"| {launcher} | {', '.join(str(r['first_step_s']) for r in runs)} | "
              f"{', '.join(str(r['total_s']) for r in runs)} | {', '.join(r['status'] for r in runs)} |")
    print(f"\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
