"""The image task's strategy for the shared training core: epochs over a stored image dataset.

`backend.training.core.run_strategy` drives it (resume from a checkpoint, a final evaluation, the
best weights put back, metrics.json, the model card, checkpoints removed); `train_images` is the
task's `train` entry. The loop is fit.py's in shape (uint8 batches to the device, Kornia
augmentation there, the model normalises), with the text trainer's progress keys, checkpoints and
stop: it checks `should_stop()` between optimizer steps and saves a checkpoint before Cancelled.

What lands in `output_dir`: model.safetensors + modelsmith_image.json (a pretrained model also
config.json and preprocessor_config.json), run_config.json, metrics.json (with the validation
images it gets wrong, most confident first), README.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Sampler

from backend.config import TrainConfig
from backend.data.store import load_split
from backend.errors import Cancelled, UserError
from backend.tasks.image_classification.batches import ImageDataset, build_augmentation, make_loader, to_pixels
from backend.tasks.image_classification.fit import EVAL_BATCH_SIZE, build_classifier
from backend.tasks.image_classification.metrics import evaluate
from backend.tasks.image_classification.model import ImageClassifier, load_classifier, save_classifier
from backend.tasks.image_classification.predictor import ImagePredictor
from backend.training.checkpoints import publish, save_checkpoint
from backend.training.core import (ProgressFn, TrainResult, best_score, build_optimizer, compiled, cpu_copy,
                                   improves, linear_schedule, patience_spent, plain_model, run_strategy)
from backend.training.phases import PhaseTimes
from backend.training.run_clock import RunClock
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

MISCLASSIFIED_KEPT = 50  # validation images listed with the run's metrics (the Runs tab's gallery)


@dataclass
class ImageTrainState:
    """Where training stands; saved with every checkpoint."""

    global_step: int = 0
    epoch: int = 0
    batches_done: int = 0          # batches of the current epoch already trained on
    best_metric: float = -1.0      # best validation macro F1 so far
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)
    evals_without_improvement: int = 0
    elapsed_seconds: float = 0.0   # training time before this session (for the time budget)


class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch (seed + epoch), so a resumed run sees the same order and can skip
    the batches it already trained on."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def start(self, epoch: int, skip: int) -> None:
        """Iterate epoch `epoch` from its `skip`-th index on."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(order[self.skip:].tolist())

    def __len__(self) -> int:
        return self.size - self.skip


@dataclass
class _Run:
    """Everything the loop needs, built once by `setup`."""

    config: TrainConfig
    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: DataLoader
    sampler: EpochSampler
    eval_loader: DataLoader
    augment: nn.Module
    labels: list[str]
    output_dir: Path
    steps_per_epoch: int
    total_steps: int
    best_weights: dict[str, torch.Tensor] | None = None
    evaluated_at: int = -1
    phases: PhaseTimes = field(default_factory=PhaseTimes)  # the core's clock, set by run_strategy


def train_images(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
                 should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator) -> TrainResult:
    """Train `config.template` (cnn or a pretrained model) on a stored image dataset."""
    return run_strategy(IMAGE_EPOCHS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator)


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
          checkpoint: Path | None) -> _Run:
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
    train_set = ImageDataset(train_images, train_targets, model.input_size)
    sampler = EpochSampler(len(train_set), config.seed)
    # Decoding stays in this process: training runs in a thread of the app, where forking
    # DataLoader workers is unsafe; on the GPU the augmentation is batched work anyway.
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                              pin_memory=torch.cuda.is_available())
    eval_loader = make_loader(ImageDataset(val_images, val_targets, model.input_size), EVAL_BATCH_SIZE,
                              shuffle=False)
    optimizer = build_optimizer(model, config, accelerator.device)
    steps_per_epoch = math.ceil(math.ceil(len(train_set) / config.batch_size) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    scheduler = linear_schedule(optimizer, config, total_steps)
    # accelerator.backward divides the loss by this: the process-wide accelerator keeps the last run's value.
    accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    augment = build_augmentation(config.template.augmentation, accelerator.unwrap_model(model).input_size)
    model = compiled(model, config)
    log.info("training %s on %d images (%d steps) on %s", config.template.kind, len(train_set), total_steps,
             accelerator.device)
    return _Run(config=config, accelerator=accelerator, model=model, optimizer=optimizer, scheduler=scheduler,
                train_loader=train_loader, sampler=sampler, eval_loader=eval_loader,
                augment=augment.to(accelerator.device), labels=labels, output_dir=Path(output_dir),
                steps_per_epoch=steps_per_epoch, total_steps=total_steps)


class _Meter:
    """Training loss and throughput between two progress reports, and the run's clock."""

    def __init__(self, device: torch.device, state: ImageTrainState, budget_seconds: float) -> None:
        self.loss_sum = torch.zeros((), device=device)  # summed on the device: .item() syncs, only to report
        self.samples, self.window_start = 0, time.monotonic()
        self.clock = RunClock(state.global_step, state.elapsed_seconds, budget_seconds)

    def add(self, loss: torch.Tensor, samples: int) -> None:
        self.loss_sum += loss.detach() * samples
        self.samples += samples

    def report(self, run: _Run, state: ImageTrainState) -> dict[str, float]:
        now = time.monotonic()
        values = {"train_loss": (self.loss_sum / max(self.samples, 1)).item(),
                  "learning_rate": float(run.scheduler.get_last_lr()[0]),
                  "samples_per_second": self.samples / max(now - self.window_start, 1e-9),
                  "eta_seconds": self.clock.eta(state.global_step, run.total_steps), **_position(run, state)}
        self.loss_sum.zero_()
        self.samples, self.window_start = 0, now
        return values


def fit(run: _Run, state: ImageTrainState, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> str:
    """The training loop; returns why it ended: completed, early_stopping or time_budget."""
    accelerator, config, model = run.accelerator, run.config, run.model
    device = accelerator.device
    meter = _Meter(device, state, config.time_budget_seconds)
    accumulation = config.gradient_accumulation_steps

    def checkpoint() -> None:
        state.elapsed_seconds = meter.clock.spent()
        with run.phases.measure("checkpoints"):
            save_checkpoint(accelerator, run.output_dir, state, None)

    model.train()
    for epoch in range(state.epoch, config.epochs):
        run.sampler.start(epoch, state.batches_done * config.batch_size)
        batches_in_epoch = math.ceil(run.sampler.size / config.batch_size)
        for images, targets in run.train_loader:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            pixels = run.augment(to_pixels(images))                        # (B, 3, S, S) in [0, 1]
            logits = model(pixels)                                         # (B, C)
            loss = F.cross_entropy(logits.float(), targets)
            accelerator.backward(loss)                                     # divides by the accumulation steps
            state.batches_done += 1
            meter.add(loss, len(targets))
            if state.batches_done % accumulation and state.batches_done < batches_in_epoch:
                continue                                                   # gradients keep adding up
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
            state.global_step += 1
            if state.global_step % config.log_every_steps == 0:
                on_progress(state.global_step, meter.report(run, state))
            if config.eval_every_steps and state.global_step % config.eval_every_steps == 0:
                evaluate_run(run, state, on_progress)
                if patience_spent(config, state.evals_without_improvement):
                    return "early_stopping"
            if meter.clock.budget_spent():
                log.info("time budget of %.0f s spent at step %d", config.time_budget_seconds, state.global_step)
                return "time_budget"
            if should_stop():
                checkpoint()
                raise Cancelled()
        state.epoch, state.batches_done = epoch + 1, 0
        if run.evaluated_at != state.global_step:
            evaluate_run(run, state, on_progress)
        checkpoint()
        if patience_spent(config, state.evals_without_improvement):
            return "early_stopping"
    return "completed"


def _position(run: _Run, state: ImageTrainState) -> dict[str, float]:
    return {"epoch": state.global_step / run.steps_per_epoch, "progress": state.global_step / run.total_steps,
            "total_steps": float(run.total_steps)}


def evaluate_run(run: _Run, state: ImageTrainState, on_progress: ProgressFn) -> None:
    """Evaluate, report, and save the model when its macro F1 beats the best so far."""
    # Several processes: every rank scores the plain module (no DDP collectives in evaluation).
    scored = plain_model(run) if run.accelerator.num_processes > 1 else run.model
    with run.phases.measure("evaluation"):
        evaluation = evaluate(scored, run.eval_loader, run.labels, run.accelerator.device)
    metrics = {**evaluation.metrics, "misclassified": evaluation.misclassified_dicts()[:MISCLASSIFIED_KEPT]}
    run.evaluated_at = state.global_step
    score = best_score(run.config, metrics)
    if improves(run.config, score, state.best_metric):
        state.best_metric, state.best_step, state.best_metrics = score, state.global_step, metrics
        state.evals_without_improvement = 0
        model = plain_model(run)
        with run.phases.measure("saving"):
            run.best_weights = cpu_copy(model)
            if run.accelerator.is_main_process:  # several ranks: rank 0 alone writes the model
                publish(run.output_dir, lambda folder: save_classifier(model, folder))
    else:
        state.evals_without_improvement += 1
    on_progress(state.global_step, {
        "eval_loss": metrics["loss"], "eval_accuracy": metrics["accuracy"], "eval_macro_f1": metrics["macro_f1"],
        "eval_macro_precision": metrics["macro_precision"], "eval_macro_recall": metrics["macro_recall"],
        **_position(run, state)})


def restore_best(model: nn.Module, run: _Run) -> None:
    """Put the best weights back: kept in memory, or (the best came before a resume) the saved model."""
    weights = run.best_weights if run.best_weights is not None else load_classifier(run.output_dir).state_dict()
    model.load_state_dict(weights)


class _ImageEpochs:
    """The strategy `run_strategy` drives."""

    State = ImageTrainState
    setup = staticmethod(setup)
    fit = staticmethod(fit)
    evaluate = staticmethod(evaluate_run)
    restore_best = staticmethod(restore_best)

    @staticmethod
    def served(model: ImageClassifier, run: _Run) -> dict:
        return {"predictor": ImagePredictor(model)}


IMAGE_EPOCHS = _ImageEpochs()
