"""Batches of images: Pillow decodes in DataLoader workers, Kornia augments whole batches on the device.

    worker:  image bytes -> load_rgb (upright RGB) -> resize to S x S -> uint8 (3, S, S)
    device:  uint8 (B, 3, S, S) -> float [0, 1] -> augmentation (training only) -> model
             (the model normalises: see model.py)

Decoding is the CPU's job and scales with workers; augmentation is batched tensor work, which is
what a GPU is for. Sending uint8 to the device moves a quarter of the bytes of float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import numpy as np
import torch
from kornia.augmentation.auto import TrivialAugment
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backend.tasks.image_classification.images import load_rgb, resize_square, to_uint8_chw

STATISTICS_SAMPLE = 2000  # images used to measure a dataset's mean and std


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


def make_loader(dataset: ImageDataset, batch_size: int, *, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader over `dataset`; seeded shuffling, persistent workers when there are any."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=generator, drop_last=drop_last, pin_memory=torch.cuda.is_available(),
                      persistent_workers=num_workers > 0)


def to_pixels(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> float32 in [0, 1], on the batch's device."""
    return batch.float().div_(255.0)


def build_augmentation(kind: str, input_size: int) -> nn.Module:
    """The augmentation preset (none / basic / strong) as a module applied to [0, 1] batches."""
    if kind == "off":
        return nn.Identity()
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
