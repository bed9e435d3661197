"""Batches of images: decoded once (or per batch, in DataLoader workers), augmented on the device.

    decode:  image bytes -> load_rgb (upright RGB) -> resize to S x S -> uint8 (3, S, S)
    device:  uint8 (B, 3, S, S) -> float [0, 1] -> augmentation (training only) -> model
             (the model normalises: see model.py)

Decoding is the CPU's job. When a split's pixels fit the memory budget (`image_dataset`), every
image is decoded once, by a thread pool (Pillow releases the GIL while it decodes and resizes),
into one uint8 tensor, and a batch is one tensor index; otherwise each epoch decodes again, in
DataLoader worker processes when there are any. Augmentation is batched tensor work, which is what
a GPU is for, so random crops and flips come fresh each epoch either way. Sending uint8 to the
device moves a quarter of the bytes of float32.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import kornia.augmentation as K
import numpy as np
import torch
from kornia.augmentation.auto import TrivialAugment
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from backend.tasks.image_classification.images import load_rgb, resize_square, to_uint8_chw

log = logging.getLogger(__name__)

STATISTICS_SAMPLE = 2000  # images used to measure a dataset's mean and std
DECODE_CHUNK = 256        # images one thread decodes per task: fewer futures, same balance
MAX_AUTO_WORKERS = 8      # DataLoader workers the default gives a GPU run


class ImageDataset(Dataset):
    """Encoded images and their label indices; items are (uint8 (3, S, S), label index)."""

    def __init__(self, images: Sequence[bytes], targets: Sequence[int], input_size: int):
        self.images = list(images)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.input_size = int(input_size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = resize_square(load_rgb(self.images[index]), self.input_size)
        return torch.from_numpy(to_uint8_chw(image)), int(self.targets[index])


class DecodedImageDataset(Dataset):
    """Images decoded once into one uint8 tensor (N, 3, S, S); items as ImageDataset's.

    `__getitems__` makes the DataLoader fetch a whole batch with one index (a copy of B images)
    instead of B Python calls; `make_loader` gives it a collate that passes the batch on. The index
    is numpy's, single-threaded: torch's splits a copy this small over its intra-op threads, whose
    barrier waits for every thread: on the busy 2-core machine (load 11) a 50,000-image epoch of
    batches of 128 took 3.9-6.5 s with torch's index and 2 threads, 0.12-0.16 s with numpy's.
    """

    def __init__(self, pixels: torch.Tensor, targets: Sequence[int]):
        self.pixels = pixels
        self.targets = np.asarray(targets, dtype=np.int64)
        self._pixels = pixels.numpy()  # the same memory

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.pixels[index], int(self.targets[index])

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        picks = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self._pixels[picks]), torch.from_numpy(self.targets[picks])  # (B, 3, S, S), (B,)


def decoded_bytes(count: int, input_size: int) -> int:
    """Bytes the decoded uint8 pixels of `count` images at `input_size` take."""
    return count * 3 * input_size * input_size


def decode_threads() -> int:
    """Threads for decoding: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decode_images(images: Sequence[bytes], input_size: int, threads: int | None = None) -> torch.Tensor:
    """Every image decoded, upright RGB, resized to input_size x input_size: uint8 (N, 3, S, S).

    Written straight into one preallocated tensor (no list of N small arrays to stack), by a pool
    of threads: Pillow decodes and resizes with the GIL released.
    """
    pixels = torch.empty((len(images), 3, input_size, input_size), dtype=torch.uint8)
    out = pixels.numpy()  # shares the tensor's memory

    def decode_range(start: int) -> None:
        for index in range(start, min(start + DECODE_CHUNK, len(images))):
            out[index] = to_uint8_chw(resize_square(load_rgb(images[index]), input_size))

    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads or decode_threads()) as pool:
        for _ in pool.map(decode_range, range(0, len(images), DECODE_CHUNK)):
            pass  # re-raises a decoding error here
    log.info("decoded %d images to %d px in %.1f s (%.0f MB)", len(images), input_size, time.monotonic() - begin,
             pixels.numel() / 2**20)
    return pixels


def image_dataset(images: Sequence[bytes], targets: Sequence[int], input_size: int,
                  budget_bytes: int) -> ImageDataset | DecodedImageDataset:
    """The images decoded once (DecodedImageDataset) when their pixels fit `budget_bytes`, else decoded
    per item each epoch (ImageDataset); a budget of 0 always decodes per item."""
    if 0 < decoded_bytes(len(images), input_size) <= budget_bytes:
        return DecodedImageDataset(decode_images(images, input_size), targets)
    return ImageDataset(images, targets, input_size)


def loader_workers(setting: int | None, device: torch.device, processes: int = 1) -> int:
    """DataLoader worker processes for per-item decoding, per training process: the setting, else none
    when training on the CPU (workers would take the cores the training threads use) and, when a GPU
    trains, the process's share of the cores less one for itself, at most MAX_AUTO_WORKERS."""
    if setting is not None:
        return setting
    if device.type == "cpu":
        return 0
    return max(0, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) // max(1, processes) - 1))


def worker_start_method() -> str:
    """How worker processes start: never by a bare fork, since the app trains in a background thread
    and a fork copies locks other threads hold. forkserver forks from a clean single-threaded server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    # The server imports this module (torch, Pillow, Kornia) once, so a worker starts ready to decode
    # instead of importing torch itself: seconds per worker, and validation's start with each evaluation.
    multiprocessing.set_forkserver_preload([__name__])
    return "forkserver"


def _whole_batch(batch):
    return batch  # DecodedImageDataset.__getitems__ already made the batch


def make_loader(dataset: ImageDataset | DecodedImageDataset, batch_size: int, *, shuffle: bool = False,
                sampler: Sampler | None = None, num_workers: int = 0, seed: int = 0, drop_last: bool = False,
                persistent_workers: bool = True) -> DataLoader:
    """A DataLoader over `dataset` with its own seeded generator (iterating draws nothing from the global RNG).

    `num_workers` decode an ImageDataset in worker processes (started by `worker_start_method`);
    a DecodedImageDataset is indexed in this process, since a worker would get its own copy of the
    tensor. Workers are persistent unless told otherwise: whoever ends the run shuts them down
    (backend.training.epochs.close_workers).
    """
    decoded = isinstance(dataset, DecodedImageDataset)
    workers = 0 if decoded else num_workers
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=workers, generator=generator, drop_last=drop_last,
                      collate_fn=_whole_batch if decoded else None, pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0 and persistent_workers,
                      multiprocessing_context=worker_start_method() if workers else None)


def to_pixels(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> float32 in [0, 1], on the batch's device."""
    return batch.float().div_(255.0)


def build_augmentation(kind: str, input_size: int) -> nn.Module:
    """The augmentation preset (off / shift / basic / strong) as a module applied to [0, 1] batches."""
    if kind == "off":
        return nn.Identity()
    if kind == "shift":
        # A crop of the image padded by an eighth on each side (4 px at 32 px: CIFAR-10's usual shift),
        # reflect-padded so that no black border teaches the network a cue absent at prediction.
        return K.AugmentationSequential(K.RandomCrop((input_size, input_size), padding=max(1, input_size // 8),
                                                     padding_mode="reflect"),
                                        K.RandomHorizontalFlip())
    # scale (0.35, 1): at 32 px a tighter crop than 0.35 of the area leaves too little to recognise.
    ops: list[nn.Module] = [K.RandomResizedCrop((input_size, input_size), scale=(0.35, 1.0)),
                            K.RandomHorizontalFlip()]
    if kind == "strong":
        ops.append(TrivialAugment())
    elif kind != "basic":
        raise ValueError(f"unknown augmentation '{kind}'")
    return K.AugmentationSequential(*ops)


def dataset_statistics(images: Sequence[bytes], input_size: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of up to STATISTICS_SAMPLE images, in [0, 1] units."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(len(images), STATISTICS_SAMPLE), replace=False)
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for index in picks:
        pixels = to_uint8_chw(resize_square(load_rgb(images[index]), input_size)).reshape(3, -1) / 255.0
        total += pixels.sum(axis=1)
        squares += (pixels ** 2).sum(axis=1)
        count += pixels.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-6))
    return mean.tolist(), std.tolist()
