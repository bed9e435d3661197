"""The Estimate of an image run: the model built as training builds it, a few optimizer steps timed
on real (augmented) batches of the dataset, scaled to an epoch (backend.training.estimate's method)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from backend.config import TrainConfig
from backend.errors import UserError
from backend.settings import Settings
from backend.tasks.image_classification.batches import build_augmentation, decoded_bytes, to_pixels
from backend.tasks.image_classification.training import build_classifier, read_images
from backend.tasks.image_classification.images import load_rgb, resize_square, to_uint8_chw
from backend.training.estimate import Estimate, _summarise, _time_steps
from storage.records import DatasetRecord


def estimate_images(config: TrainConfig, dataset: DatasetRecord) -> Estimate:
    """Parameters, memory and time per epoch of `config` on `dataset`, from measured steps."""
    from backend.training.devices import default_device

    images, targets = read_images(dataset, "train", list(dataset.labels))
    if not images:
        raise UserError(f'Dataset "{dataset.name}" has no training images. Upload it again.')
    model = build_classifier(config.template, list(dataset.labels), images, seed=config.seed)
    device = default_device()
    count = min(config.batch_size, len(images))
    labels = torch.tensor(targets[:count], dtype=torch.long)
    augment = build_augmentation(config.template.augmentation, model.input_size).to(device)

    def decoded_batch() -> torch.Tensor:
        return torch.from_numpy(np.stack([to_uint8_chw(resize_square(load_rgb(data), model.input_size))
                                          for data in images[:count]]))

    # A split that fits the decoded-image cache is decoded once, before training (as setup does):
    # its steps index a tensor. Otherwise decoding is part of every step's time, and is timed too.
    cached = 0 < decoded_bytes(len(images), model.input_size) <= Settings().image_cache_bytes
    once = decoded_batch() if cached else None

    def loss_of(step: int) -> torch.Tensor:
        batch = once if once is not None else decoded_batch()
        pixels = augment(to_pixels(batch.to(device)))
        return F.cross_entropy(model(pixels).float(), labels.to(device))

    activation_bytes, seconds = _time_steps(model, config, device, loss_of, (0.9, 0.999))
    steps_per_epoch = math.ceil(math.ceil(len(images) / config.batch_size) / config.gradient_accumulation_steps)
    return _summarise(config, device, model, activation_bytes, seconds, steps_per_epoch)
