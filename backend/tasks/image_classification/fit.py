"""Train an image classifier: setup builds, fit loops, evaluate measures (on Accelerate).

    build_classifier(template, labels, train_images)  -> ImageClassifier (CNN: the data's own mean/std)
    fit(model, train, validation, settings, on_progress=..., should_stop=...) -> FitResult

The loop is accelerate's nlp_example in shape: prepare model, optimizer and schedule (linear warmup,
then linear decay that ends at the last step or at the time budget, whichever comes first);
per batch: uint8 to the device, to [0, 1], augment (Kornia, training only), forward, cross
entropy, backward, clip, step. It reports through `on_progress(step, values)` with the text
trainer's keys (train_loss, learning_rate, samples_per_second, eval_accuracy, eval_macro_f1, ...),
checks `should_stop()` between optimizer steps (raising Cancelled), honours a time budget and early
stopping, keeps the best weights by validation macro F1 and saves them (safetensors) when an
output folder is given. The shared training core is meant to adopt this loop as its image strategy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from backend.errors import Cancelled
from backend.tasks.image_classification.batches import (ImageDataset, build_augmentation, dataset_statistics,
                                                        make_loader, to_pixels)
from backend.tasks.image_classification.cnn import Cnn
from backend.tasks.image_classification.config import CnnTemplate, FitSettings
from backend.tasks.image_classification.metrics import Evaluation, Misclassified, evaluate
from backend.tasks.image_classification.model import ImageClassifier, save_classifier

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, dict[str, float]], None]
EVAL_BATCH_SIZE = 256


@dataclass
class FitResult:
    """How a fit ended and what its best evaluation was."""

    stop_reason: str  # completed / early_stopping / time_budget
    steps: int
    best_step: int
    best_metrics: dict
    misclassified: list[Misclassified]
    train_seconds: float  # time in training steps, evaluation excluded
    samples_seen: int
    history: list[dict] = field(default_factory=list)  # one entry per evaluation

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / max(self.train_seconds, 1e-9)


def build_classifier(template, labels: list[str], train_images, seed: int = 42) -> ImageClassifier:
    """A fresh model of `template` for `labels`; the CNN normalises with the training images' statistics."""
    torch.manual_seed(seed)
    if isinstance(template, CnnTemplate):
        mean, std = dataset_statistics(train_images, template.input_size, seed)
        return ImageClassifier(Cnn(template, len(labels)), template, labels, template.input_size, mean, std)
    from backend.tasks.image_classification.model import build_pretrained

    return build_pretrained(template, labels)


def _optimizer(model: torch.nn.Module, settings: FitSettings) -> torch.optim.Optimizer:
    # No weight decay on biases and norm scales: decaying them only slows training (1-D tensors).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=settings.learning_rate)


def learning_rate_factor(step: int, total_steps: int, elapsed_seconds: float, settings: FitSettings) -> float:
    """Share of the peak learning rate: linear warmup, then linear decay to 0 at the end of training.

    With a time budget the end is whichever comes first, the last step or the budget, so a run cut
    short by the clock still ends at a low learning rate instead of stopping halfway down the slope.
    """
    progress = step / max(total_steps, 1)
    if settings.time_budget_seconds:
        progress = max(progress, elapsed_seconds / settings.time_budget_seconds)
    progress = min(progress, 1.0)
    warmup = settings.warmup_ratio
    if progress < warmup:
        return progress / warmup
    return (1.0 - progress) / (1.0 - warmup)


def fit(model: ImageClassifier, train: ImageDataset, validation: ImageDataset, settings: FitSettings, *,
        on_progress: ProgressFn = lambda step, values: None, should_stop: Callable[[], bool] = lambda: False,
        output_dir: Path | None = None, accelerator: Accelerator | None = None, num_workers: int = 0) -> FitResult:
    """Train `model` in place; at the end it holds the best weights by validation macro F1."""
    accelerator = accelerator or Accelerator()
    torch.manual_seed(settings.seed)  # Kornia draws its augmentation parameters from torch's generator
    train_loader = make_loader(train, settings.batch_size, shuffle=True, num_workers=num_workers,
                               seed=settings.seed, drop_last=len(train) > settings.batch_size)
    eval_loader = make_loader(validation, EVAL_BATCH_SIZE, shuffle=False, num_workers=num_workers)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * settings.epochs
    optimizer = _optimizer(model, settings)
    clock_start = time.monotonic()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(
        step, total_steps, time.monotonic() - clock_start, settings))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    augment = build_augmentation(model_template(model).augmentation, model_input_size(model)).to(device)
    labels = accelerator.unwrap_model(model).labels
    state = _State(start=time.monotonic())

    def evaluate_and_keep_best() -> Evaluation:
        evaluation = evaluate(model, eval_loader, labels, device)
        metrics = evaluation.metrics
        state.history.append({"step": state.step, **{k: v for k, v in metrics.items() if isinstance(v, float)}})
        if metrics["macro_f1"] > state.best_f1:
            state.best_f1, state.best_step, state.best = metrics["macro_f1"], state.step, evaluation
            state.stale = 0
            unwrapped = accelerator.unwrap_model(model)
            state.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in unwrapped.state_dict().items()}
            if output_dir is not None:
                save_classifier(unwrapped, Path(output_dir))
        else:
            state.stale += 1
        on_progress(state.step, {"eval_loss": metrics["loss"], "eval_accuracy": metrics["accuracy"],
                                 "eval_macro_f1": metrics["macro_f1"],
                                 "eval_macro_precision": metrics["macro_precision"],
                                 "eval_macro_recall": metrics["macro_recall"], "epoch": state.step / steps_per_epoch})
        return evaluation

    stop_reason = "completed"
    model.train()
    loss_sum = torch.zeros((), device=device)  # summed on the device: .item() syncs, so only when reporting
    window_samples, window_start = 0, time.monotonic()
    for epoch in range(settings.epochs):
        epoch_start = time.monotonic()
        for images, targets in train_loader:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            pixels = augment(to_pixels(images))                           # (B, 3, S, S) in [0, 1]
            logits = model(pixels)                                        # (B, C)
            loss = F.cross_entropy(logits.float(), targets)
            accelerator.backward(loss)
            if settings.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.samples += len(targets)
            window_samples += len(targets)
            loss_sum += loss.detach() * len(targets)
            if state.step % settings.log_every_steps == 0:
                now = time.monotonic()
                on_progress(state.step, {"train_loss": (loss_sum / window_samples).item(),
                                         "learning_rate": float(scheduler.get_last_lr()[0]),
                                         "samples_per_second": window_samples / max(now - window_start, 1e-9),
                                         "epoch": state.step / steps_per_epoch, "progress": state.step / total_steps})
                loss_sum.zero_()
                window_samples, window_start = 0, now
            if settings.time_budget_seconds and time.monotonic() - state.start >= settings.time_budget_seconds:
                stop_reason = "time_budget"
                break
            if should_stop():
                raise Cancelled()
        state.train_seconds += time.monotonic() - epoch_start
        evaluate_and_keep_best()
        window_start = time.monotonic()  # evaluation time is not training throughput
        if stop_reason == "time_budget":
            break
        if 0 < settings.early_stopping_patience <= state.stale:
            stop_reason = "early_stopping"
            break
    unwrapped = accelerator.unwrap_model(model)
    if state.best_weights is not None:
        unwrapped.load_state_dict(state.best_weights)
    unwrapped.eval()
    log.info("image fit %s after %d steps; best macro F1 %.4f at step %d", stop_reason, state.step, state.best_f1,
             state.best_step)
    return FitResult(stop_reason=stop_reason, steps=state.step, best_step=state.best_step,
                     best_metrics=state.best.metrics if state.best else {},
                     misclassified=state.best.misclassified if state.best else [],
                     train_seconds=state.train_seconds, samples_seen=state.samples, history=state.history)


@dataclass
class _State:
    start: float
    step: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    best_f1: float = -math.inf
    best_step: int = 0
    best: Evaluation | None = None
    best_weights: dict | None = None
    stale: int = 0
    history: list[dict] = field(default_factory=list)


def model_template(model):
    """The template of a (possibly accelerate-wrapped) ImageClassifier."""
    return getattr(model, "module", model).template


def model_input_size(model) -> int:
    return getattr(model, "module", model).input_size
