"""How an image classifier trains: its part of the epochs strategy (backend.training.epochs).

What is the image task's own: the stored splits read as encoded images, the model built
(`build_classifier`: a CNN normalising with the training images' statistics, or a pretrained
network with a new head), uint8 batches sent to the device as they are, then turned into [0, 1]
pixels and augmented there by Kornia (training only; the model normalises). The images are
decoded once before training when their pixels fit MODELSMITH_IMAGE_CACHE_MB (the training split
first, validation from what is left), else every epoch, in DataLoader worker processes when
MODELSMITH_IMAGE_WORKERS (or its default: workers on a GPU, none on the CPU) gives any. The loop, checkpoints, Stop, resume, early stopping, the time budget and the best
model by validation macro F1 are the shared core's.

What lands in `output_dir`: model.safetensors + modelsmith_image.json (a pretrained model also
config.json and preprocessor_config.json), run_config.json, metrics.json (with the validation
images it gets wrong, most confident first), README.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader

from backend.config import TrainConfig
from backend.data.store import load_split
from backend.errors import UserError
from backend.settings import Settings
from backend.tasks.image_classification.batches import (DecodedImageDataset, build_augmentation, dataset_statistics,
                                                        decoded_bytes, image_dataset, loader_workers, make_loader,
                                                        to_pixels)
from backend.tasks.image_classification.cnn import Cnn
from backend.tasks.image_classification.config import CnnTemplate
from backend.tasks.image_classification.metrics import evaluate
from backend.tasks.image_classification.model import ImageClassifier, load_classifier, save_classifier
from backend.tasks.image_classification.predictor import ImagePredictor
from backend.tasks.text_classification.metrics import progress_values
from backend.training.core import ProgressFn, TrainResult, run_strategy
from backend.training.epochs import EpochRun, Epochs, EpochShuffle, prepare_run
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

MISCLASSIFIED_KEPT = 50  # validation images listed with the run's metrics (the Runs tab's gallery)
EVAL_BATCH_SIZE = 256


def train_images(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
                 should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator,
                 settings: Settings | None = None) -> TrainResult:
    """Train `config.template` (cnn or a pretrained model) on a stored image dataset."""
    return run_strategy(IMAGE_EPOCHS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                        settings)


def build_classifier(template, labels: list[str], train_images: Sequence[bytes], seed: int = 42) -> ImageClassifier:
    """A fresh model of `template` for `labels`; the CNN normalises with the training images' statistics."""
    torch.manual_seed(seed)
    if isinstance(template, CnnTemplate):
        mean, std = dataset_statistics(train_images, template.input_size, seed)
        return ImageClassifier(Cnn(template, len(labels)), template, labels, template.input_size, mean, std)
    from backend.tasks.image_classification.model import build_pretrained

    return build_pretrained(template, labels)


@dataclass
class ImageClassifierTask:
    """The image classifier's answers to the epochs loop (backend.training.epochs.EpochTask)."""

    augment: nn.Module  # Kornia, on the device, applied to [0, 1] training batches only
    labels: list[str]
    checkpoint_tokenizer: None = None

    def batch_loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, int]:
        images, targets = batch                                        # uint8 (B, 3, S, S), (B,)
        logits = model(self.augment(to_pixels(images)))                # (B, C)
        return F.cross_entropy(logits.float(), targets), len(targets)

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
        evaluation = evaluate(model, loader, self.labels, device)
        return {**evaluation.metrics, "misclassified": evaluation.misclassified_dicts()[:MISCLASSIFIED_KEPT]}

    def progress(self, metrics: dict) -> dict[str, float]:
        return progress_values(metrics)

    def save(self, model: nn.Module, folder: Path) -> None:
        save_classifier(model, folder)

    def saved_weights(self, output_dir: Path) -> dict[str, torch.Tensor]:
        return load_classifier(output_dir).state_dict()

    def served(self, model: nn.Module, run: EpochRun) -> dict:
        return {"predictor": ImagePredictor(model)}


def read_images(dataset: DatasetRecord, split: str, labels: list[str]) -> tuple[list[bytes], list[int]]:
    """A stored split's encoded images and label indices."""
    frame = load_split(dataset, split)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(frame["label"]) - set(index))
    if unknown:
        raise UserError(f'Dataset "{dataset.name}" has labels its class list lacks ({", ".join(unknown[:5])}). '
                        "Upload the zip again.")
    return frame["image"].tolist(), [index[label] for label in frame["label"]]


def setup(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
          checkpoint: Path | None, settings: Settings) -> EpochRun:
    """Read the splits, build the model, loaders, optimizer and schedule; prepare them."""
    labels = list(dataset.labels)
    if len(labels) < 2:
        raise UserError(f"Dataset '{dataset.name}' has {len(labels)} class(es); a classifier needs at least 2.")
    set_seed(config.seed)
    train_images, train_targets = read_images(dataset, "train", labels)
    val_images, val_targets = read_images(dataset, "validation", labels)
    if not train_images or not val_images:
        raise UserError(f"Dataset '{dataset.name}' needs images in both its training and validation splits; "
                        "upload it again with a validation share above 0.")
    model = build_classifier(config.template, labels, train_images, seed=config.seed)
    budget = settings.image_cache_bytes   # the runner's settings (the app's, in a worker process too)
    train_set = image_dataset(train_images, train_targets, model.input_size, budget)
    if isinstance(train_set, DecodedImageDataset):
        budget -= decoded_bytes(len(train_set), model.input_size)
    eval_set = image_dataset(val_images, val_targets, model.input_size, budget)
    workers = loader_workers(settings.image_workers, accelerator.device, accelerator.num_processes)
    # Workers start by forkserver (the app trains in a background thread, where a bare fork is
    # unsafe) and persist across epochs; the epochs strategy shuts them down when the run ends. The
    # loader's own generator keeps iterating it from drawing on the global RNG (Kornia's).
    train_loader = make_loader(train_set, config.batch_size, sampler=EpochShuffle(len(train_set), config.seed),
                               num_workers=workers, seed=config.seed)
    # Validation's workers start with each evaluation and end with it: no second set idles in memory.
    eval_loader = make_loader(eval_set, EVAL_BATCH_SIZE, num_workers=workers, persistent_workers=False)
    augment = build_augmentation(config.template.augmentation, model.input_size).to(accelerator.device)
    task = ImageClassifierTask(augment, labels)
    return prepare_run(config, accelerator, model, train_loader, eval_loader, task, output_dir,
                       f"{len(train_set)} images")


IMAGE_EPOCHS = Epochs(setup)
