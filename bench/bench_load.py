"""Benchmark: many API clients on loopback while a job trains, then the same load while idle.

Not a test (tests/reliability/test_load.py runs a short version). Run from the project root:

    python bench/bench_load.py [--clients 20] [--seconds 60] [--data ../shared/data/sms_spam/sms_spam.tsv]

What it does, all in one process, as `python app.py` would run it:
1. a temporary home dir; ingest the dataset; train a small LSTM to predict with;
2. build the app and launch it on 127.0.0.1 (the app's own launch options), start the job workers;
3. busy: queue a long LSTM run and, while it trains, let `--clients` threads each hold a
   gradio_client Client and alternate /predict calls with listing the runs. Listing runs is not
   a public API endpoint, so it is called as the Runs tab's timer calls it: the same handler, in the
   serving process (repository reads on the same SQLite file while the trainer writes to it);
4. stop the job (it checkpoints), then the same load again while idle.

It counts every error (an exception or a malformed answer) and reports p50/p95 latency per call
kind. Results: bench/results/load-<timestamp>.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sms_spam" / "sms_spam.tsv"
log = logging.getLogger("bench_load")


def percentile(values: list[float], share: float) -> float | None:
    """The `share` quantile (0..1) of `values` by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def summarise(latencies: list[float], errors: int) -> dict:
    """Calls, errors and p50/p95/max latency in milliseconds."""
    def ms(value):
        return None if value is None else round(value * 1000, 1)

    return {"calls": len(latencies) + errors, "ok": len(latencies), "errors": errors,
            "p50_ms": ms(percentile(latencies, 0.50)), "p95_ms": ms(percentile(latencies, 0.95)),
            "max_ms": ms(max(latencies) if latencies else None),
            "mean_ms": ms(statistics.fmean(latencies) if latencies else None)}


def hammer(url: str, run_id: int, texts: list[str], clients: int, seconds: float,
           list_runs: Callable[[], object]) -> dict:
    """`clients` threads, each with its own gradio_client, alternate /predict and list_runs for `seconds`."""
    from gradio_client import Client

    lock = threading.Lock()
    latencies: dict[str, list[float]] = {"predict": [], "list_runs": []}
    errors: dict[str, int] = {"predict": 0, "list_runs": 0, "connect": 0}
    samples: list[str] = []
    ready = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001 (an error to count, not to crash on)
            with lock:
                errors["connect"] += 1
                samples.append(f"connect: {type(exc).__name__}: {exc}")
            ready.wait()
            return
        ready.wait()
        deadline = time.monotonic() + seconds
        call = index
        while time.monotonic() < deadline:
            kind = "predict" if call % 2 == 0 else "list_runs"
            started = time.perf_counter()
            try:
                if kind == "predict":
                    answer = client.predict(run_id, texts[call % len(texts)], api_name="/predict")
                    if not answer.get("confidences"):
                        raise ValueError(f"no confidences in {str(answer)[:200]}")
                else:
                    list_runs()
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors[kind] += 1
                    if len(samples) < 5:
                        samples.append(f"{kind}: {type(exc).__name__}: {str(exc)[:300]}")
            else:
                elapsed = time.perf_counter() - started
                with lock:
                    latencies[kind].append(elapsed)
            call += 1

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(seconds + 120)
    wall = time.perf_counter() - started
    result = {kind: summarise(values, errors[kind]) for kind, values in latencies.items()}
    result["connect_errors"] = errors["connect"]
    result["errors"] = sum(errors.values())
    result["error_samples"] = samples
    result["seconds"] = round(wall, 1)
    result["calls_per_second"] = round(sum(len(v) for v in latencies.values()) / wall, 1)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _small_lstm(dataset_id: int, **overrides):
    from backend.config import TrainConfig
    from backend.tasks.text_classification.configs import LstmTemplate

    values = dict(dataset_id=dataset_id, template=LstmTemplate(vocab_size=2000, embedding_dim=32, hidden_size=32),
                  epochs=1, batch_size=32, learning_rate=0.005, max_length=64, log_every_steps=10, seed=1)
    return TrainConfig(**{**values, **overrides})


def run_bench(clients: int, seconds: float, data: Path, home: Path) -> dict:
    """Set up a home with a trained model, serve it, run the busy then idle load; returns the results."""
    from backend.data.store import IngestOptions, ingest, load_split
    from backend.services import build_services
    from backend.settings import Settings
    from ui.app import build_app, launch_kwargs
    from ui.runs_tab import on_refresh_list

    settings = Settings(home=home, port=free_port(), _env_file=None)
    services = build_services(settings)
    try:
        dataset = ingest(data, IngestOptions(), settings=settings, repo=services.repo).dataset
        texts = [str(t)[:500] for t in load_split(dataset, "validation")["text"].head(200)]
        services.runner.start()
        model_run = services.runner.submit(_small_lstm(dataset.id, name="served-model"))
        model = services.runner.wait(model_run, 1800)
        if model.status != "succeeded":
            raise RuntimeError(f"the model to predict with did not train: {model.error}")
        demo = build_app(services)  # after the model exists: the Playground's run picker lists it
        demo.launch(**launch_kwargs(settings), prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{settings.port}"

        def list_runs():  # as the Runs tab's timer does, in this (the serving) process
            return on_refresh_list(services, None, None, None)

        busy_run = services.runner.submit(_small_lstm(dataset.id, epochs=100, name="busy-job"))
        deadline = time.monotonic() + 300
        while services.repo.get_run(busy_run).status != "running" or not services.repo.get_metrics(busy_run):
            if time.monotonic() > deadline:
                raise RuntimeError("the busy job did not start training within 5 minutes")
            time.sleep(0.2)
        steps_before = _last_step(services, busy_run)
        busy = hammer(url, model_run, texts, clients, seconds, list_runs)
        busy["training_steps_during_load"] = _last_step(services, busy_run) - steps_before
        busy["job_status_after"] = services.repo.get_run(busy_run).status
        services.runner.stop(busy_run)
        stopped = services.runner.wait(busy_run, 300)
        idle = hammer(url, model_run, texts, clients, seconds, list_runs)
        demo.close()
        lost = _lost(services)
        return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                "clients": clients, "seconds": seconds, "dataset": data.name, "dataset_rows": dataset.rows,
                "busy": busy, "idle": idle, "busy_job_final_status": stopped.status, "lost": lost}
    finally:
        services.close()


def _last_step(services, run_id: int) -> int:
    metrics = services.repo.get_metrics(run_id, ["train_loss"])
    return metrics[-1].step if metrics else 0


def _lost(services) -> dict:
    """What the load must not have cost: runs pointing at missing folders, a broken DB."""
    import sqlite3

    missing = [r.id for r in services.repo.list_runs() if r.output_dir and not Path(r.output_dir).is_dir()]
    connection = sqlite3.connect(str(services.settings.home / "modelsmith.db"))
    try:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
    return {"runs_with_missing_folder": missing, "integrity_check": check}


def machine() -> str:
    """CPU model and count, OS and Python: what the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def table(results: dict) -> str:
    """A markdown table of the busy and idle figures."""
    lines = ["| phase | call | calls | errors | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|---|---|"]
    for phase in ("busy", "idle"):
        for kind in ("predict", "list_runs"):
            row = results[phase][kind]
            lines.append(f"| {phase} | {kind} | {row['calls']} | {row['errors']} | {row['p50_ms']} | "
                         f"{row['p95_ms']} | {row['max_ms']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as home:
        results = run_bench(args.clients, args.seconds, args.data, Path(home))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"{results['clients']} clients x {results['seconds']:.0f} s on {results['machine']} ({results['date']})")
    print(table(results))
    print(f"training steps during the busy load: {results['busy']['training_steps_during_load']}; "
          f"errors busy/idle: {results['busy']['errors']}/{results['idle']['errors']}; lost: {results['lost']}")
    print(f"results: {path}")
    return 0 if results["busy"]["errors"] == 0 and results["idle"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
