"""Sweep: the `cnn`'s training recipe on CIFAR-10 at a fixed number of epochs (augmentation, label smoothing).

Not a test. Run from the project root (about 6 minutes per variant at 6 epochs on the idle 2-core CPU):

    python bench/sweep_cnn_recipe.py --epochs 6 --variants rrc_0.35,rrc_0.6,pad_4,pad_4+ls0.1

Each variant trains the `cnn` template's default network (backend.tasks.image_classification.cnn.Cnn,
its default shape) from the same seed, on the bench_images split (45,000 training / 5,000 validation
images, decoded once), with bench_images' run config (batch 128, the template's learning rate and
weight decay, 5% warm-up, the core's linear schedule, clipping) in a plain loop, and evaluates after
every epoch both on the images alone and averaged with their mirror images (flip test-time
augmentation). Variants:
- `rrc_<s>`: Kornia RandomResizedCrop of s..1 of the area, and horizontal flips (`basic` is rrc_0.35);
- `pad_<p>`: Kornia RandomCrop of the p-px reflect-padded image, and horizontal flips (`shift` is pad_4);
- `+ls<e>` after either: cross-entropy with label smoothing e.
With a fixed number of epochs the accuracies do not depend on the machine's load (only the times do),
so the sweep can share a busy machine. JSON: stdout and bench/results/sweep-cnn-recipe-<time>.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_images import bench_config, load_cifar  # noqa: E402
from bench.results_file import write_results  # noqa: E402

log = logging.getLogger("sweep_cnn_recipe")


def augmentation(name: str, size: int):
    """The Kornia pipeline a variant's augmentation part names."""
    import kornia.augmentation as K

    kind, _, value = name.partition("_")
    if kind == "rrc":
        return K.AugmentationSequential(K.RandomResizedCrop((size, size), scale=(float(value), 1.0)),
                                        K.RandomHorizontalFlip())
    if kind == "pad":
        return K.AugmentationSequential(K.RandomCrop((size, size), padding=int(value), padding_mode="reflect"),
                                        K.RandomHorizontalFlip())
    raise SystemExit(f"unknown augmentation '{name}': use rrc_<scale> or pad_<pixels>")


def run_variant(variant: str, data: dict, settings, epochs: int) -> list[dict]:
    """Train one variant; its validation accuracy (plain and flip-averaged) after each epoch."""
    import torch
    import torch.nn.functional as F

    from backend.tasks.image_classification.cnn import Cnn
    from backend.training.core import linear_schedule

    name, _, smoothing = variant.partition("+ls")
    torch.manual_seed(settings.seed)
    net = Cnn(settings.template, 10)
    augment = augmentation(name, settings.template.input_size)
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.learning_rate)
    x_train, y_train, x_val, y_val, mean, std = (data[k] for k in ("x_train", "y_train", "x_val", "y_val",
                                                                   "mean", "std"))
    steps_per_epoch = len(x_train) // settings.batch_size
    scheduler = linear_schedule(optimizer, settings, steps_per_epoch * epochs)
    curve, start = [], time.monotonic()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x_train))
        for i in range(steps_per_epoch):
            index = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            pixels = augment(x_train[index].float() / 255)
            loss = F.cross_entropy(net((pixels - mean) / std), y_train[index],
                                   label_smoothing=float(smoothing or 0.0))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        net.eval()
        plain = flipped = 0
        with torch.no_grad():
            for i in range(0, len(x_val), 500):
                pixels = (x_val[i:i + 500].float() / 255 - mean) / std
                logits = net(pixels)
                truth = y_val[i:i + 500]
                plain += (logits.argmax(1) == truth).sum().item()
                flipped += ((logits + net(pixels.flip(-1))).argmax(1) == truth).sum().item()
        curve.append({"epoch": epoch + 1, "accuracy": plain / len(x_val),
                      "accuracy_flip_averaged": flipped / len(x_val), "seconds": round(time.monotonic() - start, 1)})
        log.info("%s %s", variant, curve[-1])
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--variants", default="rrc_0.35,rrc_0.6,pad_4,pad_4+ls0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from backend.tasks.image_classification.batches import dataset_statistics, decode_images

    settings = bench_config(0, args.epochs)
    prepared, train, _, _ = load_cifar(0, settings.seed)
    ids = {label: i for i, label in enumerate(prepared.labels)}
    size = settings.template.input_size
    mean, std = dataset_statistics(list(train["image"]), size, settings.seed)
    data = {"x_train": decode_images(list(train["image"]), size),
            "y_train": torch.tensor(train["label"].map(ids).values),
            "x_val": decode_images(list(prepared.validation["image"]), size),
            "y_val": torch.tensor(prepared.validation["label"].map(ids).values),
            "mean": torch.tensor(mean).view(1, 3, 1, 1), "std": torch.tensor(std).view(1, 3, 1, 1)}
    results = {variant: run_variant(variant, data, settings, args.epochs) for variant in args.variants.split(",")}
    write_results("sweep-cnn-recipe", {"args": vars(args), "settings": settings.model_dump(mode="json"),
                                       "results": results})


if __name__ == "__main__":
    main()
