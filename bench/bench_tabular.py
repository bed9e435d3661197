"""Benchmark: UCI Adult through Modelsmith's tabular templates, side by side with plain library calls.

Not a test. Run from the project root:

    python bench/bench_tabular.py [--threads 1] [--mlp-seconds 60] [--ft-seconds 150] [--only gbdt,lightgbm]

One run, one process, the same seeded 20% validation split (stratified, seed 42) carved from
../shared/data/adult/adult.csv, read with backend.tasks.tabular.reading.read_table (so `?` is
missing and the space after each comma is gone):
- ours-mlp, ours-ft-transformer, ours-gbdt: backend.tasks.tabular.fitting.fit_template with each
  template's default config and default TabularFitSettings, except a time budget for the two
  neural templates (--mlp-seconds, --ft-seconds: the best epoch within the budget is kept) so the
  whole run takes a few minutes on a 2-core CPU. "fit seconds" covers fitting the preprocessing,
  encoding both splits and training (with per-epoch / per-round validation);
- plain-lightgbm: `lightgbm.LGBMClassifier()` with default settings (only n_jobs set to the thread
  count, and verbose=-1), string columns turned into
  pandas categories (LightGBM's own way to take them), 100 rounds, no validation set;
- plain-sklearn-hgb: `HistGradientBoostingClassifier()` with default settings (it reads pandas
  categories itself; its default early stopping holds out 10% of training rows when n > 10,000).
"fit seconds" for the plain ones covers the category conversion and the fit.
Every model runs with the same CPU thread count (--threads, set through OMP_NUM_THREADS and
torch.set_num_threads before anything is imported): on a shared machine more threads than free
cores make OpenMP programs wait on each other, which would measure the load, not the method.
The tree runs (ours-gbdt and the plain ones) take seconds, so each is repeated (--repeats, default
5), interleaved so they share the machine's load, and its median time reported.
Results: a table on stdout, JSON in bench/results/tabular-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_first() -> int:
    """Thread count must be in the environment before numpy / LightGBM / torch load OpenMP."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=1)
    threads = parser.parse_known_args()[0].threads
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


THREADS = _threads_first()

import datetime as dt  # noqa: E402  (after the thread count is set)
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.tasks.tabular.columns import default_spec, infer_schema  # noqa: E402
from backend.tasks.tabular.config import (FtTransformerTemplate, GbdtTemplate, MlpTemplate,  # noqa: E402
                                          TabularFitSettings)
from backend.tasks.tabular.fitting import fit_template  # noqa: E402
from backend.tasks.tabular.reading import read_table  # noqa: E402
from backend.tasks.tabular.splitting import split_table  # noqa: E402

ADULT = ROOT.parent / "shared" / "data" / "adult" / "adult.csv"
RESULTS = ROOT / "bench" / "results"
TARGETS = {"ours-gbdt accuracy": ">= 0.870", "ours-ft-transformer accuracy": ">= 0.855",
           "ours-mlp accuracy": ">= 0.850", "ours-gbdt fit seconds": "<= 1.2 x plain-lightgbm"}
POSITIVE = ">50K"
log = logging.getLogger("bench_tabular")


def _ours(kind: str, spec, train, validation, budget: float) -> dict:
    template = {"mlp": MlpTemplate(), "ft-transformer": FtTransformerTemplate(), "gbdt": GbdtTemplate()}[kind]
    settings = TabularFitSettings(time_budget_seconds=budget, num_threads=THREADS)
    started = time.perf_counter()
    model, result = fit_template(template, spec, train, validation, settings)
    seconds = time.perf_counter() - started
    # Score from the returned model on the raw validation rows (the path a prediction takes).
    probabilities = model.predict_output(validation)
    positive = model.preprocessor.classes.index(POSITIVE)
    truth = (validation[spec.target] == POSITIVE).to_numpy()
    predicted = np.array(model.preprocessor.classes)[probabilities.argmax(axis=1)] == POSITIVE
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "roc_auc": float(roc_auc_score(truth, probabilities[:, positive])), "fit_seconds": seconds,
            "best_step": result.best_step, "steps": result.steps, "stop_reason": result.stop_reason,
            "time_budget_seconds": budget, "epochs_or_rounds_run": len(result.history)}


def _plain(kind: str, spec, train, validation) -> dict:
    import lightgbm as lgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    inputs = list(spec.inputs)
    started = time.perf_counter()
    x_train = train[inputs].copy()
    categorical = [c for c in inputs if x_train[c].dtype.kind not in "iufb"]
    for column in categorical:
        x_train[column] = x_train[column].astype("category")
    y_train = (train[spec.target] == POSITIVE).to_numpy().astype(int)
    if kind == "plain-lightgbm":
        # n_jobs is a machine setting, not a model one: the wrapper would otherwise count the cores
        # itself and ignore OMP_NUM_THREADS.
        model = lgb.LGBMClassifier(verbose=-1, n_jobs=THREADS).fit(x_train, y_train)
    else:
        model = HistGradientBoostingClassifier().fit(x_train, y_train)
    seconds = time.perf_counter() - started
    x_valid = validation[inputs].copy()
    for column in categorical:
        x_valid[column] = x_valid[column].astype(x_train[column].dtype)   # same category order as training
    truth = (validation[spec.target] == POSITIVE).to_numpy().astype(int)
    probabilities = model.predict_proba(x_valid)[:, 1]
    return {"accuracy": float(accuracy_score(truth, probabilities >= 0.5)),
            "roc_auc": float(roc_auc_score(truth, probabilities)), "fit_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every model (default 1)")
    parser.add_argument("--mlp-seconds", type=float, default=60, help="time budget of ours-mlp")
    parser.add_argument("--ft-seconds", type=float, default=150, help="time budget of ours-ft-transformer")
    parser.add_argument("--seed", type=int, default=42, help="seed of the validation split")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each tree run (median time)")
    parser.add_argument("--only", default="", help="comma-separated subset of the runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    frame = read_table(ADULT)
    spec = default_spec(infer_schema(frame))
    train, validation = split_table(frame, spec, validation_share=0.2, seed=args.seed)
    log.info("adult: %d training rows, %d validation rows, inputs %s", len(train), len(validation), list(spec.inputs))
    runs = ["plain-lightgbm", "plain-sklearn-hgb", "ours-gbdt", "ours-mlp", "ours-ft-transformer"]
    if args.only:
        runs = [r for r in runs if r in args.only.split(",")]
    # The tree runs take seconds: repeat them, interleaved (plain, ours, plain, ours, ...) so that
    # each sees the same load on the shared machine, and keep the median time (all are seeded, so
    # the scores repeat exactly, except HistGradientBoosting's unseeded early-stopping hold-out).
    # The neural runs fill their time budget once.
    budgets = {"ours-mlp": args.mlp_seconds, "ours-ft-transformer": args.ft_seconds}
    measured: dict[str, list[dict]] = {run: [] for run in runs}
    for _ in range(args.repeats):
        for run in (r for r in runs if r not in budgets):
            measured[run].append(_plain(run, spec, train, validation) if run.startswith("plain")
                                 else _ours(run.removeprefix("ours-"), spec, train, validation, 0.0))
    for run in (r for r in runs if r in budgets):
        measured[run].append(_ours(run.removeprefix("ours-"), spec, train, validation, budgets[run]))
    results = {}
    for run in runs:
        times = [m["fit_seconds"] for m in measured[run]]
        results[run] = {**measured[run][-1], "fit_seconds": float(np.median(times)), "fit_seconds_each": times}
        log.info("%s: %s", run, results[run])
    print(f"{'run':22} {'accuracy':>9} {'roc_auc':>8} {'fit s':>7}")
    for run, r in results.items():
        print(f"{run:22} {r['accuracy']:9.4f} {r['roc_auc']:8.4f} {r['fit_seconds']:7.1f}")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
              # The tabular fits do not move to a GPU yet (the shared training core will): CPU always.
              "device_used": "cpu", "torch": torch.__version__,
              "load_average_at_end": os.getloadavg(), "threads": args.threads, "split_seed": args.seed,
              "train_rows": len(train), "validation_rows": len(validation), "targets": TARGETS, "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tabular-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
