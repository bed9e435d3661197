"""Benchmark: UCI Adult through Modelsmith's tabular templates, side by side with plain library calls.

Not a test. Run from the project root:

    python bench/bench_tabular.py [--threads 1] [--mlp-seconds 60] [--ft-seconds 150] [--only gbdt,lightgbm]

One run, one process, the same seeded 20% validation split (stratified, seed 42) carved from
../shared/data/adult/adult.csv, read with backend.tasks.tabular.reading.read_table (so `?` is
missing and the space after each comma is gone):
- ours-mlp, ours-ft-transformer, ours-gbdt: backend.tasks.tabular.fitting.fit_template with each
  template's default config and default TabularFitSettings, except a time budget for the two
  neural templates (--mlp-seconds, --ft-seconds: the best epoch within the budget is kept) so the
  whole run takes a few minutes on a 2-core CPU. "fit seconds" is one fit_template call, from the
  raw data frames to the trained model and its validation metrics: fitting the preprocessing,
  encoding both splits, training with validation every epoch / boosting round (the live curve and
  early stopping), the final validation metrics (accuracy, macro P/R/F1, confusion matrix, ROC-AUC,
  PR curve) and, for the neural templates, the permutation importance;
- plain-lightgbm: `lightgbm.LGBMClassifier()` with default settings (only n_jobs set to the thread
  count, and verbose=-1), string columns turned into pandas categories (the user's own encoding:
  LightGBM's way to take them), 100 rounds, no validation set; "fit seconds" covers the category
  conversion and the fit;
- plain-lightgbm-es: the same call doing the work ours does, for a like-for-like reference (not the
  issue's target): n_estimators=200 with the validation split as eval_set, both metrics every round
  (binary_logloss, binary_error) and lgb.early_stopping(20) on the first, as ours; its "fit seconds"
  also covers converting the validation split and predict_proba on it (ours' final scoring), not the
  metrics computed from it;
- plain-sklearn-hgb: `HistGradientBoostingClassifier()` with default settings (it reads pandas
  categories itself; its default early stopping holds out 10% of training rows when n > 10,000).
Each fit's wall seconds and CPU seconds (this process's, time.process_time) are recorded: with one
thread the CPU seconds move much less with the machine's load than the wall seconds do.
Every model runs with the same CPU thread count (--threads, set through OMP_NUM_THREADS and
torch.set_num_threads before anything is imported): on a shared machine more threads than free
cores make OpenMP programs wait on each other, which would measure the load, not the method.
The tree runs (ours-gbdt and the plain ones) take seconds, so each runs once untimed (first calls
load code), then is repeated (--repeats, default 7), interleaved so they share the machine's load,
and its median time reported, with the ratio ours-gbdt / plain-lightgbm (the target) of the medians.
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
import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results_file import write_results  # noqa: E402

from backend.tasks.tabular.columns import default_spec, infer_schema  # noqa: E402
from backend.tasks.tabular.config import (FtTransformerTemplate, GbdtTemplate, MlpTemplate,  # noqa: E402
                                          TabularFitSettings)
from backend.tasks.tabular.fitting import fit_template  # noqa: E402
from backend.tasks.tabular.reading import read_table  # noqa: E402
from backend.tasks.tabular.splitting import split_table  # noqa: E402

ADULT = ROOT.parent / "shared" / "data" / "adult" / "adult.csv"
TARGETS = {"ours-gbdt accuracy": ">= 0.870", "ours-ft-transformer accuracy": ">= 0.855",
           "ours-mlp accuracy": ">= 0.850", "ours-gbdt fit seconds": "<= 1.2 x plain-lightgbm"}
POSITIVE = ">50K"
log = logging.getLogger("bench_tabular")


class _Clock:
    """Wall and CPU seconds of the block it times."""

    def __enter__(self) -> "_Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _ours(kind: str, spec, train, validation, budget: float) -> dict:
    template = {"mlp": MlpTemplate(), "ft-transformer": FtTransformerTemplate(), "gbdt": GbdtTemplate()}[kind]
    settings = TabularFitSettings(time_budget_seconds=budget, num_threads=THREADS)
    with _Clock() as clock:
        model, result = fit_template(template, spec, train, validation, settings)
    # Score from the returned model on the raw validation rows (the path a prediction takes).
    probabilities = model.predict_output(validation)
    positive = model.preprocessor.classes.index(POSITIVE)
    truth = (validation[spec.target] == POSITIVE).to_numpy()
    predicted = np.array(model.preprocessor.classes)[probabilities.argmax(axis=1)] == POSITIVE
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "roc_auc": float(roc_auc_score(truth, probabilities[:, positive])), "fit_seconds": clock.wall,
            "fit_cpu_seconds": clock.cpu, "best_step": result.best_step, "steps": result.steps,
            "stop_reason": result.stop_reason, "time_budget_seconds": budget,
            "epochs_or_rounds_run": len(result.history)}


def _as_categories(frame, inputs: list[str], like=None):
    """The inputs with string columns as pandas categories (in `like`'s category order when given)."""
    x = frame[inputs].copy()
    for column in (c for c in inputs if x[c].dtype.kind not in "iufb"):
        x[column] = x[column].astype("category" if like is None else like[column].dtype)
    return x


def _plain(kind: str, spec, train, validation) -> dict:
    import lightgbm as lgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    inputs = list(spec.inputs)
    y_train = (train[spec.target] == POSITIVE).to_numpy().astype(int)
    truth = (validation[spec.target] == POSITIVE).to_numpy().astype(int)
    extra = {}
    with _Clock() as clock:
        x_train = _as_categories(train, inputs)
        # n_jobs is a machine setting, not a model one: the wrapper would otherwise count the cores
        # itself and ignore OMP_NUM_THREADS.
        if kind == "plain-lightgbm":
            model = lgb.LGBMClassifier(verbose=-1, n_jobs=THREADS).fit(x_train, y_train)
        elif kind == "plain-lightgbm-es":
            x_valid = _as_categories(validation, inputs, like=x_train)
            # eval_set, not 4.7's eval_X/eval_y: requirements.txt allows LightGBM 4.3 (4.7 warns, still works).
            model = lgb.LGBMClassifier(n_estimators=200, verbose=-1, n_jobs=THREADS).fit(
                x_train, y_train, eval_set=[(x_valid, truth)], eval_metric=["binary_logloss", "binary_error"],
                callbacks=[lgb.early_stopping(20, first_metric_only=True, verbose=False)])
            probabilities = model.predict_proba(x_valid)[:, 1]
            extra = {"best_step": model.best_iteration_}
        else:
            model = HistGradientBoostingClassifier().fit(x_train, y_train)
    if kind != "plain-lightgbm-es":
        probabilities = model.predict_proba(_as_categories(validation, inputs, like=x_train))[:, 1]
    return {"accuracy": float(accuracy_score(truth, probabilities >= 0.5)),
            "roc_auc": float(roc_auc_score(truth, probabilities)), "fit_seconds": clock.wall,
            "fit_cpu_seconds": clock.cpu, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every model (default 1)")
    parser.add_argument("--mlp-seconds", type=float, default=60, help="time budget of ours-mlp")
    parser.add_argument("--ft-seconds", type=float, default=150, help="time budget of ours-ft-transformer")
    parser.add_argument("--seed", type=int, default=42, help="seed of the validation split")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each tree run (median time)")
    parser.add_argument("--only", default="", help="comma-separated subset of the runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    frame = read_table(ADULT)
    spec = default_spec(infer_schema(frame))
    train, validation = split_table(frame, spec, validation_share=0.2, seed=args.seed)
    log.info("adult: %d training rows, %d validation rows, inputs %s", len(train), len(validation), list(spec.inputs))
    runs = ["plain-lightgbm", "plain-lightgbm-es", "plain-sklearn-hgb", "ours-gbdt", "ours-mlp",
            "ours-ft-transformer"]
    if args.only:
        runs = [r for r in runs if r in args.only.split(",")]
    # The tree runs take seconds: after one untimed call each (first calls load code), repeat them,
    # interleaved (plain, ours, plain, ours, ...) so that each sees the same load on the shared
    # machine, and keep the median time (all are seeded, so the scores repeat exactly, except
    # HistGradientBoosting's unseeded early-stopping hold-out). The neural runs fill their time budget once.
    budgets = {"ours-mlp": args.mlp_seconds, "ours-ft-transformer": args.ft_seconds}
    load_at_start = os.getloadavg()
    measured: dict[str, list[dict]] = {run: [] for run in runs}
    trees = [r for r in runs if r not in budgets]
    for repeat in range(args.repeats + 1):
        for run in trees:
            result = (_plain(run, spec, train, validation) if run.startswith("plain")
                      else _ours(run.removeprefix("ours-"), spec, train, validation, 0.0))
            if repeat:
                measured[run].append(result)
    for run in (r for r in runs if r in budgets):
        measured[run].append(_ours(run.removeprefix("ours-"), spec, train, validation, budgets[run]))
    results = {}
    for run in runs:
        times = [m["fit_seconds"] for m in measured[run]]
        cpu = [m["fit_cpu_seconds"] for m in measured[run]]
        results[run] = {**measured[run][-1], "fit_seconds": float(np.median(times)), "fit_seconds_each": times,
                        "fit_cpu_seconds": float(np.median(cpu)), "fit_cpu_seconds_each": cpu}
        log.info("%s: %s", run, results[run])
    ratios = {f"ours-gbdt / {plain}": {clock: results["ours-gbdt"][key] / results[plain][key]
                                       for clock, key in (("wall", "fit_seconds"), ("cpu", "fit_cpu_seconds"))}
              for plain in ("plain-lightgbm", "plain-lightgbm-es") if plain in results and "ours-gbdt" in results}
    print(f"{'run':22} {'accuracy':>9} {'roc_auc':>8} {'fit s':>7} {'cpu s':>7}")
    for run, r in results.items():
        print(f"{run:22} {r['accuracy']:9.4f} {r['roc_auc']:8.4f} {r['fit_seconds']:7.2f} {r['fit_cpu_seconds']:7.2f}")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio['wall']:.2f}x wall, {ratio['cpu']:.2f}x CPU (medians)")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
              # The tabular fits do not move to a GPU yet (the shared training core will): CPU always.
              "device_used": "cpu", "torch": torch.__version__,
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
              "threads": args.threads, "split_seed": args.seed, "train_rows": len(train),
              "validation_rows": len(validation), "targets": TARGETS, "ratios": ratios, "results": results}
    write_results("tabular", report, indent=1)


if __name__ == "__main__":
    main()
