"""Benchmark: decoding CIFAR-10's 50,000 JPEGs for training, three ways.

Not a test. Run from the project root:

    python bench/bench_decode.py                      # all 50,000 images, every mode
    python bench/bench_decode.py --images 5000 --rounds 1   # a quick look

The images are read straight from ../shared/data/cifar10/train.zip into a list of bytes: the same
bytes the app's ingest stores (the Parquet `image` column holds each file as uploaded). Then,
each mode in a fresh Python process of its own (so each has its own peak memory):
- serial: `decode_images(..., threads=1)`: Pillow decode + resize + uint8 CHW, one image after the
  other, into one preallocated (N, 3, 32, 32) tensor;
- threads: `decode_images` with its default thread pool (one thread per core), as a training
  run's setup does when the split fits MODELSMITH_IMAGE_CACHE_MB;
- workers: one epoch of `make_loader(ImageDataset(...), num_workers=W)`: what a run over the
  cache budget does every epoch (DataLoader worker processes, forkserver, batch 256), worker
  start-up included;
- cached epoch: one epoch of batches (128, shuffled) from the decoded tensor through the
  training's loader: what every epoch after the first costs with the cache.
The modes take turns, `--rounds` times (3 by default), so a busy machine's load falls on all of
them alike. Per mode and round: seconds, images/s, peak RSS of the process (ru_maxrss) and of its
process tree (RSS of the process and its children summed, sampled every 20 ms; pages shared
between them count twice), the decoded tensor's size, the load average after it. Summary: per
mode the median images/s and its ratio to serial's. JSON: stdout and bench/results/decode-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.results_file import write_results  # noqa: E402
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train.zip"
INPUT_SIZE = 32
MODES = ("serial", "threads", "workers", "cached_epoch")


def read_zip(limit: int) -> tuple[list[bytes], list[int]]:
    """Up to `limit` image files of train.zip (sorted by name) and their class indices."""
    with zipfile.ZipFile(DATA) as archive:
        members = sorted((info for info in archive.infolist() if not info.is_dir()
                          and info.filename.lower().endswith((".jpg", ".jpeg", ".png"))), key=lambda i: i.filename)
        members = members[:limit] if limit else members
        classes = sorted({info.filename.split("/")[-2] for info in members})
        return ([archive.read(info) for info in members],
                [classes.index(info.filename.split("/")[-2]) for info in members])


class TreeMemory:
    """The peak of (RSS of this process + its descendants), sampled on a thread."""

    def __init__(self, every_s: float = 0.02) -> None:
        import psutil

        self._process, self._every, self.peak = psutil.Process(), every_s, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._done.is_set():
            total = 0
            for process in [self._process, *self._process.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass  # a worker that just ended
            self.peak = max(self.peak, total)
            self._done.wait(self._every)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def run_mode(mode: str, images: list[bytes], targets: list[int], workers: int, threads: int) -> dict:
    """One mode, timed, in this process."""
    import torch

    from backend.tasks.image_classification.batches import (DecodedImageDataset, ImageDataset, decode_images,
                                                            make_loader)
    from backend.training.epochs import EpochShuffle, close_workers

    facts: dict = {"mode": mode, "images": len(images)}
    with TreeMemory() as memory:
        start = time.monotonic()
        if mode in ("serial", "threads"):
            pixels = decode_images(images, INPUT_SIZE, threads=1 if mode == "serial" else threads or None)
            facts["tensor_mb"] = round(pixels.numel() * pixels.element_size() / 2**20, 1)
            facts["threads"] = 1 if mode == "serial" else threads or os.cpu_count()
        elif mode == "workers":
            loader = make_loader(ImageDataset(images, targets, INPUT_SIZE), 256, num_workers=workers)
            seen = sum(len(batch) for batch, _ in loader)
            close_workers(loader)
            assert seen == len(images)
            facts["workers"] = workers
        else:
            pixels = decode_images(images, INPUT_SIZE, threads=threads or None)
            dataset = DecodedImageDataset(pixels, targets)
            loader = make_loader(dataset, 128, sampler=EpochShuffle(len(dataset), 0))
            start = time.monotonic()  # the epoch only: decoding is the threads mode
            seen = sum(len(batch) for batch, _ in loader)
            assert seen == len(images) and torch.is_tensor(pixels)
        seconds = time.monotonic() - start
    facts |= {"seconds": round(seconds, 2), "images_per_second": round(len(images) / seconds),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "peak_tree_rss_mb": round(memory.peak / 2**20)}
    return facts


def summary(runs: list[dict], modes: list[str]) -> dict:
    """Per mode: median images/s, its ratio to serial's median, the highest peak RSS seen."""
    medians = {mode: statistics.median(r["images_per_second"] for r in runs if r["mode"] == mode) for mode in modes}
    return {mode: {"median_images_per_second": round(medians[mode]),
                   "ratio_to_serial": round(medians[mode] / medians["serial"], 2) if "serial" in medians else None,
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in runs if r["mode"] == mode),
                   "peak_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in runs if r["mode"] == mode)}
            for mode in modes}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=0, help="Images to decode (0 = all 50,000).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers (workers mode).")
    parser.add_argument("--threads", type=int, default=0, help="Decoding threads (0 = one per core).")
    parser.add_argument("--modes", default=",".join(MODES), help=f"Comma-separated, of {', '.join(MODES)}.")
    parser.add_argument("--rounds", type=int, default=3, help="Times each mode runs, taking turns.")
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # a child process runs one mode
    args = parser.parse_args()
    if args.one:
        images, targets = read_zip(args.images)
        print(json.dumps(run_mode(args.one, images, targets, args.workers, args.threads)))
        return
    started = dt.datetime.now(dt.timezone.utc)
    results = {"benchmark": "decode", "date": started.isoformat(timespec="seconds"), "data": str(DATA),
               "machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "nproc": os.cpu_count()},
               "load_average_before": load_average(), "modes": []}
    modes = args.modes.split(",")
    for round_ in range(args.rounds):
        for mode in modes:
            command = [sys.executable, __file__, "--one", mode, "--images", str(args.images), "--workers",
                       str(args.workers), "--threads", str(args.threads)]
            finished = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
            facts = json.loads(finished.stdout.strip().splitlines()[-1])
            facts |= {"round": round_, "load_average_after": load_average()}
            results["modes"].append(facts)
            print(json.dumps(facts), file=sys.stderr)
    results["summary"] = summary(results["modes"], modes)
    write_results("decode", results)


if __name__ == "__main__":
    main()
