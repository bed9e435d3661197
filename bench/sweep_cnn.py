"""Sweep: which `cnn` shape learns CIFAR-10 best in a fixed time on this CPU (issue 14's defaults).

Not a test. Run from the project root (~25 min for the default grid at 180 s each):

    python bench/sweep_cnn.py --budget 180
    python bench/sweep_cnn.py --micro-only            # the throughput comparison alone (~2 min)
    python bench/sweep_cnn.py --epochs 3 --train-images 10000   # equal images seen, no time budget

Two parts, one process, the data read once:
1. throughput, interleaved: every candidate network (and each in both memory layouts,
   channels-last and contiguous) takes a few training steps (batch 128, 32 px, AdamW, Kornia
   `basic` augmentation, random pixels) in turn, for several rounds, so a change in the machine's
   other load hits all of them alike; img/s = the median round's. Also the rate at which the
   task's Dataset decodes training images (the app decodes every image every epoch).
2. accuracy at a fixed time budget: each candidate trained through the app's own path
   (bench_images.run_ours: `backend.training.run.train` on the splits stored as Parquet, batch 128,
   5% warm-up, the cnn's usual learning rate and weight decay), all 45,000 training images, the
   seeded stratified 5,000-image validation split. The linear schedule decays over `epochs`, which
   a time budget does not shorten, so each candidate gets the epochs it can finish in the budget
   at the rate measured in part 1 (at least 1): a schedule cut short ends at a high learning rate
   and would penalise the slow networks for the schedule, not their shape.
The load average is sampled every 10 s during each run. JSON: bench/results/sweep-cnn-<time>.json;
a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_images import bench_config, load_cifar, run_ours  # noqa: E402
from bench.results_file import RESULTS  # noqa: E402

log = logging.getLogger("sweep_cnn")

# Informed by the 2026-12-01 throughput figures (idle, 2 threads): two blocks per stage at width 32
# is ~7 epochs in 15 min; one block per stage is 3-4x faster, so wider single-block nets fit too.
CANDIDATES = {
    "w32-b2": {"width": 32, "blocks_per_stage": 2},   # the old default
    "w24-b2": {"width": 24, "blocks_per_stage": 2},
    "w32-b1": {"width": 32, "blocks_per_stage": 1},
    "w48-b1": {"width": 48, "blocks_per_stage": 1},
    "w64-b1": {"width": 64, "blocks_per_stage": 1},
    "w32-b1-s4": {"width": 32, "blocks_per_stage": 1, "stages": 4},
}
BATCH = 128
TRAIN_IMAGES = 45000


def template_of(settings: dict):
    from backend.tasks.image_classification.config import CnnTemplate

    return CnnTemplate(**settings)


def measure_throughput(names: list[str], rounds: int, steps: int) -> dict:
    """img/s of a training step for every candidate x layout, interleaved round by round."""
    import torch
    import torch.nn.functional as F

    from backend.tasks.image_classification.batches import build_augmentation
    from backend.tasks.image_classification.cnn import Cnn

    torch.manual_seed(0)
    augment = build_augmentation("basic", 32)
    pixels = torch.rand(BATCH, 3, 32, 32)
    targets = torch.randint(0, 10, (BATCH,))
    contenders = {}
    for name in names:
        for layout, memory_format in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
            model = Cnn(template_of(CANDIDATES[name]), 10)
            model.memory_format = memory_format  # an instance attribute: forward's conversion
            model.to(memory_format=memory_format)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            contenders[(name, layout)] = (model, optimizer)

    def step(model, optimizer):
        loss = F.cross_entropy(model(augment(pixels)), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for model, optimizer in contenders.values():  # warm-up: oneDNN picks its kernels
        step(model, optimizer)
    rates: dict = {key: [] for key in contenders}
    loads = []
    for _ in range(rounds):
        loads.append(os.getloadavg()[0])
        for key, (model, optimizer) in contenders.items():
            start = time.perf_counter()
            for _ in range(steps):
                step(model, optimizer)
            rates[key].append(steps * BATCH / (time.perf_counter() - start))
    result = {}
    for (name, layout), values in rates.items():
        model = contenders[(name, layout)][0]
        result.setdefault(name, {"parameters": sum(p.numel() for p in model.parameters())})
        result[name][f"img_per_s_{layout}"] = statistics.median(values)
        result[name][f"rounds_{layout}"] = values
    return {"candidates": result, "rounds": rounds, "steps_per_round": steps, "batch": BATCH,
            "load_average_1min_by_round": loads}


def measure_decoding(images: list[bytes]) -> float:
    """Images/s the task's Dataset decodes (Pillow, resize, uint8) in this process."""
    from backend.tasks.image_classification.batches import ImageDataset

    dataset = ImageDataset(images, [0] * len(images), 32)
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset) / (time.perf_counter() - start)


class LoadSampler:
    """The 1-minute load average every 10 s while a run trains."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(10):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def epochs_for(budget: float, train_rate: float, decode_rate: float, train_images: int) -> int:
    """Epochs a run can finish in `budget`: training plus decoding each image once per epoch,
    plus decoding and scoring the 5,000 validation images after each epoch."""
    per_epoch = train_images * (1 / train_rate + 1 / decode_rate) + 5000 * (1 / decode_rate + 1 / (3 * train_rate))
    return max(1, round(budget / per_epoch))


def table(report: dict) -> str:
    lines = ["| candidate | parameters | img/s channels-last / contiguous (microbench) | epochs (schedule) | "
             "epochs reached | samples/s in the run | val accuracy | load avg (mean of run) |",
             "|---|---|---|---|---|---|---|---|"]
    micro = report["throughput"]["candidates"]
    for name, run in report.get("runs", {}).items():
        m = micro[name]
        lines.append(f"| {name} | {m['parameters']:,} | {m['img_per_s_channels_last']:.0f} / "
                     f"{m['img_per_s_contiguous']:.0f} | {run['epochs_scheduled']} | {run['epochs_reached']:.2f} | "
                     f"{run['samples_per_second']:.0f} | {run['validation_accuracy']:.4f} | "
                     f"{run['load_average_mean']:.2f} |")
    if not report.get("runs"):
        for name, m in micro.items():
            lines.append(f"| {name} | {m['parameters']:,} | {m['img_per_s_channels_last']:.0f} / "
                         f"{m['img_per_s_contiguous']:.0f} | | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=180, help="Seconds of training per candidate.")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds of the throughput comparison.")
    parser.add_argument("--steps", type=int, default=4, help="Training steps per candidate per round.")
    parser.add_argument("--micro-only", action="store_true", help="Only the throughput comparison.")
    parser.add_argument("--throughput-from", type=Path,
                        help="Reuse the throughput comparison of an earlier sweep's JSON instead of measuring it.")
    parser.add_argument("--epochs", type=int, default=0,
                        help="Train every candidate this many epochs with no time budget (equal images seen) "
                             "instead of the epochs each can finish in --budget.")
    parser.add_argument("--train-images", type=int, default=0,
                        help="Train on a seeded stratified sample of this many images (0 = all 45,000).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    report: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                               f"torch {torch.__version__}, {torch.get_num_threads()} threads",
                    "load_average_at_start": os.getloadavg(), "args": vars(args),
                    "candidates": {name: CANDIDATES[name] for name in args.candidates}}
    if args.throughput_from:
        report["throughput"] = json.loads(args.throughput_from.read_text(encoding="utf-8"))["throughput"]
        report["throughput"]["reused_from"] = str(args.throughput_from)
    else:
        report["throughput"] = measure_throughput(args.candidates, args.rounds, args.steps)
    log.info("throughput: %s", {k: (round(v["img_per_s_channels_last"]), round(v["img_per_s_contiguous"]))
                                for k, v in report["throughput"]["candidates"].items()})
    if not args.micro_only:
        settings = bench_config(0 if args.epochs else args.budget, 0)
        prepared, train, read_seconds, _ = load_cifar(args.train_images, settings.seed)
        decode_rate = measure_decoding(list(train["image"][:2000]))
        report["decode_images_per_second"] = decode_rate
        report["read_seconds"] = read_seconds
        report["settings"] = settings.model_dump(mode="json", exclude={"template"})
        log.info("read in %.0f s; decoding %.0f img/s", read_seconds, decode_rate)
        report["runs"] = {}
        for name in args.candidates:
            rate = report["throughput"]["candidates"][name]["img_per_s_channels_last"]
            epochs = args.epochs or epochs_for(args.budget, rate, decode_rate, len(train))
            config = type(settings).model_validate({**settings.model_dump(), "epochs": epochs,
                                                    "template": template_of(CANDIDATES[name]).model_dump()})
            log.info("%s: %d epoch(s)%s", name, epochs, "" if args.epochs else f" in {args.budget:.0f} s")
            with tempfile.TemporaryDirectory(prefix="sweep-cnn-") as folder, LoadSampler() as load:
                start = time.monotonic()
                run = run_ours(prepared, train, config, Path(folder))
                run["wall_seconds"] = time.monotonic() - start
            steps_per_epoch = math.ceil(len(train) / config.batch_size)
            run.update(epochs_scheduled=epochs, epochs_reached=run["steps"] / steps_per_epoch,
                       load_average_samples=load.samples,
                       load_average_mean=statistics.mean(load.samples) if load.samples else os.getloadavg()[0])
            report["runs"][name] = run
            log.info("%s: accuracy %.4f, %.2f epochs, %.0f samples/s, load %.2f", name, run["validation_accuracy"],
                     run["epochs_reached"], run["samples_per_second"], run["load_average_mean"])
            _write(report)  # after every run: a long sweep interrupted keeps what it measured
    report["load_average_at_end"] = os.getloadavg()
    out = _write(report)
    sys.stdout.write(table(report) + "\n")
    log.info("written %s", out)


def _write(report: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sweep-cnn-{report['date'].replace(':', '').replace('-', '')[:15]}.json"
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
