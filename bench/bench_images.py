"""Benchmark: CIFAR-10 with the image task's `cnn` template against a plain PyTorch script.

Not a test. Run from the project root (the full run the issue asks for, ~35 min on a 2-core CPU):

    python bench/bench_images.py --time-budget 900
    python bench/bench_images.py --train-images 5000 --time-budget 120     # a smoke run

What runs, one after the other in this process, on the same data:
- ingest: ../shared/data/cifar10/train.zip read by reading.read_image_zip (every image decoded
  and checked), split by prepare.prepare_images with a seeded stratified 5,000-image validation
  split (CIFAR-10 ships no test split here); `--train-images N` then keeps a seeded stratified
  sample of N training images;
- ours: the app's own training path: the splits stored as Parquet (as an upload stores them), the
  `cnn` template's run config (`default_config(..., "cnn", "image-classification")`, batch size 128,
  5% warm-up) trained by `backend.training.run.train`, i.e. the image task's strategy on the shared
  training core (checkpoints each epoch included); the images decoded once from their JPEG bytes
  by the run's setup into one uint8 tensor (they fit MODELSMITH_IMAGE_CACHE_MB; the setup's
  decoding counts in its "setup" phase, not in samples/s), augmented by Kornia on the device;
- plain: the same network written out in plain PyTorch (nn.Sequential, channels-last like ours), the
  images decoded once into one uint8 tensor up front (as torchvision's CIFAR10 keeps them), the same Kornia
  augmentation (the template's default "shift"), normalisation, AdamW groups, learning-rate schedule
  (the core's `linear_schedule`), clipping, batch size, seed and time budget, evaluated once per epoch
  as ours is (each image's logits averaged with its mirror's: the template's test_time_flip).
Both stop at the same time budget (or epochs). Samples/s = training images seen / time in the
training steps (ours: the run's "steps" phase, evaluation, checkpoints and saving excluded).
Validation accuracy: ours = the best evaluation by macro F1 (what it keeps), plain = the best epoch
by accuracy. JSON: stdout and bench/results/images-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results_file import write_results  # noqa: E402
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train.zip"
VALIDATION_IMAGES = 5000
TARGETS = {"ours/plain samples/s": ">= 1.0", "ours validation accuracy (15 min, 2-core CPU)": ">= 0.80",
           "ours validation accuracy (GPU, < 60 s)": ">= 0.94"}

log = logging.getLogger("bench_images")


def load_cifar(train_images: int, seed: int):
    """Prepared splits of CIFAR-10 and how long reading them took."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from backend.tasks.image_classification.prepare import SplitOptions, prepare_images
    from backend.tasks.image_classification.reading import read_image_zip

    start = time.monotonic()
    read = read_image_zip(DATA)
    read_seconds = time.monotonic() - start
    prepared = prepare_images(read, options=SplitOptions(validation_fraction=VALIDATION_IMAGES / len(read.frame),
                                                         seed=seed))
    train = prepared.train
    if train_images and train_images < len(train):
        keep, _ = train_test_split(range(len(train)), train_size=train_images, stratify=train["label"],
                                   random_state=seed)
        train = train.iloc[sorted(keep)].reset_index(drop=True)
    assert isinstance(train, pd.DataFrame)
    return prepared, train, read_seconds, len(read.frame)


def bench_config(time_budget: float, epochs: int):
    """The run config both contenders follow: the cnn template's usual settings, batch 128, 5% warm-up."""
    from backend.config import default_config

    config = default_config(1, "cnn", "image-classification")
    overrides = {"batch_size": 128, "warmup_ratio": 0.05, "time_budget_seconds": time_budget,
                 **({"epochs": epochs} if epochs else {})}
    return config.model_copy(update=overrides)


def run_ours(prepared, train, config, folder: Path) -> dict:
    """Train through the app's entry point on the splits stored as an upload stores them."""
    import math

    from backend.training.phases import METRICS_KEY
    from backend.training.run import train as train_run
    from storage.records import DatasetRecord

    folder.mkdir(parents=True, exist_ok=True)
    for split, frame in (("train", train), ("validation", prepared.validation)):
        frame[["image", "label"]].to_parquet(folder / f"{split}.parquet", index=False)
    dataset = DatasetRecord(id=1, name="cifar10", task="image-classification", content_hash="0" * 64,
                            path=str(folder), text_column=None, label_column=None,
                            rows=len(train) + len(prepared.validation), train_rows=len(train),
                            validation_rows=len(prepared.validation), labels=list(prepared.labels))
    curve, steps = [], [0]

    def on_progress(step, values):
        steps[0] = max(steps[0], step)
        if "eval_accuracy" in values:
            curve.append((step, values["eval_accuracy"]))

    result = train_run(config, dataset, folder / "run", on_progress=on_progress, should_stop=lambda: False)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    full_epochs, rest = divmod(steps[0], steps_per_epoch)
    seen = full_epochs * len(train) + rest * config.batch_size  # an epoch's last batch is short
    timing = result.metrics[METRICS_KEY]
    return {"samples_per_second": seen / timing["steps"], "validation_accuracy": result.metrics["accuracy"],
            "validation_macro_f1": result.metrics["macro_f1"], "steps": steps[0], "train_seconds": timing["steps"],
            "timing_seconds": timing, "stop_reason": result.stop_reason, "eval_accuracy_by_step": curve,
            "template": config.template.model_dump(),
            "parameters": sum(p.numel() for p in result.predictor.model.parameters())}


def run_plain(prepared, train, settings, mean, std) -> dict:  # settings: the TrainConfig ours runs
    """The same network, augmentation and optimisation as a plain PyTorch script would write them."""
    import io

    import kornia.augmentation as K
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch import nn

    from backend.training.core import linear_schedule

    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where Accelerator() puts ours
    ids = {label: i for i, label in enumerate(prepared.labels)}

    def decode(frame):
        pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in frame["image"]])
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        return images.to(device), torch.tensor(frame["label"].map(ids).values).to(device)

    x_train, y_train = decode(train)
    x_val, y_val = decode(prepared.validation)

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    shape = settings.template  # the cnn template's width, stages, blocks and dropout, written out
    layers, channels = [], 3
    for stage in range(shape.stages):
        for _ in range(shape.blocks_per_stage):
            layers += block(channels, shape.width * 2 ** stage)
            channels = shape.width * 2 ** stage
        layers.append(nn.MaxPool2d(2))
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(shape.dropout),
                        nn.Linear(channels, 10)).to(device, memory_format=torch.channels_last)  # as ours
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    # The cnn's default augmentation ("shift"): a crop of the 4-px reflect-padded image, and flips.
    augment = K.AugmentationSequential(K.RandomCrop((32, 32), padding=4, padding_mode="reflect"),
                                       K.RandomHorizontalFlip()).to(device)

    def scores(pixels):  # evaluation: each image's logits plus its mirror's, as the cnn's test_time_flip
        return net(pixels) + net(pixels.flip(-1)) if shape.test_time_flip else net(pixels)

    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.learning_rate)
    steps_per_epoch = len(x_train) // settings.batch_size
    total = steps_per_epoch * settings.epochs
    scheduler = linear_schedule(optimizer, settings, total)  # the same schedule as ours: warm-up, linear decay
    start = time.monotonic()
    train_seconds, seen, best, curve, step = 0.0, 0, 0.0, [], 0
    for _ in range(settings.epochs):
        net.train()
        epoch_start = time.monotonic()
        order = torch.randperm(len(x_train), device=device)
        out_of_time = False
        for i in range(steps_per_epoch):
            index = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            pixels = augment(x_train[index].float() / 255)
            normalised = ((pixels - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(normalised), y_train[index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seen += len(index)
            step += 1
            if settings.time_budget_seconds and time.monotonic() - start >= settings.time_budget_seconds:
                out_of_time = True
                break
        train_seconds += time.monotonic() - epoch_start
        net.eval()
        with torch.no_grad():
            predicted = torch.cat([scores((x_val[i:i + 256].float() / 255 - mean_t) / std_t).argmax(1)
                                   for i in range(0, len(x_val), 256)])
        accuracy = (predicted == y_val).float().mean().item()
        curve.append((step, accuracy))
        best = max(best, accuracy)
        if out_of_time:
            break
    return {"samples_per_second": seen / train_seconds, "validation_accuracy": best, "steps": step,
            "train_seconds": train_seconds, "eval_accuracy_by_step": curve,
            "parameters": sum(p.numel() for p in net.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=0, help="Training images to keep (0 = all 45,000).")
    parser.add_argument("--time-budget", type=float, default=900, help="Seconds of training for each contender.")
    parser.add_argument("--epochs", type=int, default=0, help="Epochs (0 = the cnn template's usual setting).")
    parser.add_argument("--only", choices=["ours", "plain"], help="Run one contender only.")
    parser.add_argument("--plain-budget", type=float, default=0,
                        help="Seconds of training for the plain script (0 = --time-budget): enough for its "
                             "samples/s in a shorter run; its accuracy is then that of a cut-short run.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from backend.tasks.image_classification.batches import dataset_statistics
    import tempfile

    settings = bench_config(args.time_budget, args.epochs)
    prepared, train, read_seconds, total_images = load_cifar(args.train_images, settings.seed)
    log.info("read %d images in %.1f s; training on %d, validating on %d", total_images, read_seconds, len(train),
             len(prepared.validation))
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                         f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}",
              "load_average_at_start": os.getloadavg(), "args": vars(args),
              "settings": settings.model_dump(mode="json"),
              "ingest": {"images": total_images, "seconds": read_seconds,
                         "images_per_second": total_images / read_seconds},
              "train_images": len(train), "validation_images": len(prepared.validation), "targets": TARGETS}
    if args.only != "plain":
        with tempfile.TemporaryDirectory(prefix="bench-images-") as folder:
            report["ours"] = run_ours(prepared, train, settings, Path(folder))
        log.info("ours: %s", {k: v for k, v in report["ours"].items() if k != "eval_accuracy_by_step"})
    if args.only != "ours":
        mean, std = dataset_statistics(list(train["image"]), 32, settings.seed)
        plain_settings = (settings.model_copy(update={"time_budget_seconds": args.plain_budget})
                          if args.plain_budget else settings)
        report["plain"] = run_plain(prepared, train, plain_settings, mean, std)
        log.info("plain: %s", {k: v for k, v in report["plain"].items() if k != "eval_accuracy_by_step"})
    if "ours" in report and "plain" in report:
        report["ours_over_plain_samples_per_second"] = (report["ours"]["samples_per_second"]
                                                        / report["plain"]["samples_per_second"])
    report["load_average_at_end"] = os.getloadavg()
    log.info("written %s", write_results("images", report))


if __name__ == "__main__":
    main()
