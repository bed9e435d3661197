"""Benchmark: fine-tuning the bundled EfficientNet-Lite0 (`efficientnet-lite0`) on CIFAR-10, beside the `cnn`
from scratch, in the same time budget, on the same images, through the app's own training path.

Not a test. Run from the project root:

    python bench/bench_images_pretrained.py --data sample --time-budget 240      # quick: sample_1k.zip
    python bench/bench_images_pretrained.py --data full --time-budget 900        # train.zip, 5,000 validation

What runs, one after the other in this process:
- data: `sample` = ../shared/data/cifar10/sample_1k.zip (100 images per class) with a seeded stratified
  20% validation split; `full` = train.zip (50,000) with a 5,000-image validation split (as
  bench/bench_images.py; evaluating 5,000 images at 96 px takes minutes on a 2-core CPU);
- each contender: the template's own run config (`default_config(...)`: its learning rate and
  epochs from the task's training defaults), batch size `--batch-size`, the time budget, trained by
  `backend.training.run.train` (bench_images.run_ours: the splits stored as Parquet, the image task's
  strategy, evaluation and checkpoint at the end). Validation accuracy is the best evaluation's.
JSON: stdout and bench/results/images-pretrained-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results_file import write_results  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
DATA = {"sample": (CIFAR / "sample_1k.zip", 0.2), "full": (CIFAR / "train.zip", 5000 / 50000)}

log = logging.getLogger("bench_images_pretrained")


def load(data: str, seed: int):
    """Prepared splits of the chosen CIFAR-10 zip, and how long reading it took."""
    from backend.tasks.image_classification.prepare import SplitOptions, prepare_images
    from backend.tasks.image_classification.reading import read_image_zip

    path, fraction = DATA[data]
    start = time.monotonic()
    read = read_image_zip(path)
    seconds = time.monotonic() - start
    return prepare_images(read, options=SplitOptions(validation_fraction=fraction, seed=seed)), seconds


def contender_config(kind: str, args):
    """The template's usual run config, with the bench's batch size and time budget."""
    from backend.config import apply_overrides, default_config

    template = {"input_size": str(args.input_size), "train_backbone": str(not args.head_only).lower()} \
        if kind == "efficientnet-lite0" else {}
    config = apply_overrides(default_config(1, kind, "image-classification"), {
        **template, "batch_size": str(args.batch_size), "time_budget_seconds": str(args.time_budget),
        **({"epochs": str(args.epochs)} if args.epochs else {})})
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA), default="sample")
    parser.add_argument("--time-budget", type=float, default=240, help="Seconds of training for each contender.")
    parser.add_argument("--input-size", type=int, default=96, help="efficientnet-lite0's input size (pixels).")
    parser.add_argument("--head-only", action="store_true", help="efficientnet-lite0 trains its head only.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=0, help="Epochs (0 = the template's usual setting).")
    parser.add_argument("--contenders", default="efficientnet-lite0,cnn")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from bench_images import run_ours

    prepared, read_seconds = load(args.data, 42)
    log.info("read in %.1f s: %d training, %d validation images", read_seconds, len(prepared.train),
             len(prepared.validation))
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                         f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}",
              "args": vars(args), "read_seconds": read_seconds, "train_images": len(prepared.train),
              "validation_images": len(prepared.validation), "contenders": {}}
    for kind in args.contenders.split(","):
        config = contender_config(kind, args)
        load_before = os.getloadavg()
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bench-pretrained-") as folder:
            result = run_ours(prepared, prepared.train, config, Path(folder))
        result.update(wall_seconds=time.monotonic() - start, load_average_before=load_before,
                      load_average_after=os.getloadavg(), learning_rate=config.learning_rate)
        report["contenders"][kind] = result
        log.info("%s: accuracy %.3f, %d steps, %.1f samples/s, %.0f s wall", kind, result["validation_accuracy"],
                 result["steps"], result["samples_per_second"], result["wall_seconds"])
    log.info("written %s", write_results("images-pretrained", report))


if __name__ == "__main__":
    main()
