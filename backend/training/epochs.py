"""The epochs strategy of the training core: epochs over a dataloader, for every task that trains so.

Shape of accelerate's examples/nlp_example.py: the task's setup reads its splits and builds the
model and its dataloaders; `prepare_run` builds the optimizer and schedule and hands everything to
`accelerator.prepare`; `fit` loops over epochs, evaluates, keeps the best. What differs between
tasks is small and comes in an `EpochTask` the setup builds: how a batch becomes a loss (with any
on-device augmentation), how the model is scored on the validation loader, which values a
progress report shows, how the best model is written and read back, what the result serves.
Text classification (backend.tasks.text_classification.training), image classification
(backend.tasks.image_classification.training) and the neural table templates
(backend.tasks.tabular.neural_training) train here.

The loop knows nothing of the DB or the UI: it reports through `on_progress(step, values)` and
checks `should_stop()` between optimizer steps. `backend.training.core.run_strategy` runs it
(resume, final evaluation, finish); `backend.training.run.train` is the entry point of every run.

What lands in `output_dir`:
    the best model (the task's best_metric)           files the task's `save` writes
    run_config.json, metrics.json, README.md           the config, best metrics, model card
    checkpoints/step-00000120/                         resumable state, last 2 (removed on success)
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Sampler

from backend.config import TrainConfig
from backend.training.core import (LoopRun, LoopState, Meter, ProgressFn, build_optimizer, compiled, end_of_step,
                                   keep_if_best, linear_schedule, patience_spent, plain_model, position,
                                   restore_weights, save_run_checkpoint)

log = logging.getLogger(__name__)

ADAM_BETAS = (0.9, 0.999)  # AdamW's defaults: the classifier templates were tuned with them


@dataclass
class EpochState(LoopState):
    """Where an epochs run stands; saved with every checkpoint."""

    epoch: int = 0               # current epoch (0-based)
    batches_done: int = 0        # batches of the current epoch already trained on


class EpochShuffle(Sampler[int]):
    """A seeded shuffle per epoch (seed + epoch): a resumed run sees the same order and can skip the
    batches it already trained on. The prepared loader calls `set_epoch`."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.size


class EpochTask(Protocol):
    """What a task tells the epochs loop (built by the task's setup, kept on the run)."""

    checkpoint_tokenizer: object | None  # a learned vocabulary saved with every checkpoint; None: nothing

    def batch_loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, int]:
        """The mean loss of a training batch (already on the device) and its sample count; on-device
        augmentation happens here."""

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
        """Validation metrics of `model` (in eval mode, without gradients): the task's best_metric among them."""

    def progress(self, metrics: dict) -> dict[str, float]:
        """The values of an evaluation that a progress report shows (eval_loss, eval_accuracy, ...)."""

    def save(self, model: nn.Module, folder: Path) -> None:
        """Write the best model into `folder`."""

    def saved_weights(self, output_dir: Path) -> dict[str, torch.Tensor]:
        """The state dict of the model `save` wrote (the best came before a resume)."""

    def served(self, model: nn.Module, run: EpochRun) -> dict:
        """What the result hands back in memory: {"predictor": ...}."""

    # Optional: `final_metrics(model, metrics) -> dict`, the best model's metrics with what is
    # measured once at the end (the tables' permutation importance), before metrics.json is written.


@dataclass(kw_only=True)
class EpochRun(LoopRun):
    """Everything the loop needs, built once by the task's setup through `prepare_run`."""

    scheduler: object
    train_loader: DataLoader
    eval_loader: DataLoader
    task: EpochTask


def prepare_run(config: TrainConfig, accelerator: Accelerator, model: nn.Module, train_loader: DataLoader,
                eval_loader: DataLoader, task: EpochTask, output_dir: Path, what: str) -> EpochRun:
    """Optimizer and schedule for `model`; model, optimizer, training loader and schedule prepared.

    `train_loader`'s sampler must give the same order for the same epoch (a `set_epoch` method, seeded),
    and the loader its own generator, so a resumed run skips exactly the batches it trained on.
    """
    optimizer = build_optimizer(model, config, accelerator.device, ADAM_BETAS)
    # The last, short accumulation window of an epoch still steps (accelerate syncs at the end of
    # the dataloader), hence the ceil. The schedule counts the steps of one process; with N
    # processes accelerate steps it N times per optimizer step, so it spans the same samples.
    scheduler = linear_schedule(optimizer, config,
                                math.ceil(len(train_loader) / config.gradient_accumulation_steps) * config.epochs)
    # accelerator.backward divides the loss by this: the process-wide accelerator keeps the last run's value.
    accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    # Steps each process takes (its shard of every epoch): what progress and resume count.
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    model = compiled(model, config)
    log.info("training %s on %s (%d steps) on %s", config.template.kind, what, total_steps, accelerator.device)
    return EpochRun(config=config, accelerator=accelerator, model=model, optimizer=optimizer, scheduler=scheduler,
                    train_loader=train_loader, eval_loader=eval_loader, task=task, output_dir=Path(output_dir),
                    steps_per_epoch=steps_per_epoch, total_steps=total_steps)


def fit(run: EpochRun, state: EpochState, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> str:
    """The training loop; returns why it ended: completed, early_stopping or time_budget."""
    accelerator, config, model, task = run.accelerator, run.config, run.model, run.task
    meter = Meter(accelerator.device, state, config.time_budget_seconds)
    model.train()
    for epoch in range(state.epoch, config.epochs):
        _start_epoch(run.train_loader, epoch)
        batches = run.train_loader
        if state.batches_done:  # resuming mid-epoch: same order, skip what was already trained on
            batches = accelerator.skip_first_batches(run.train_loader, state.batches_done)
        try:
            for batch in batches:
                with accelerator.accumulate(model):
                    loss, samples = task.batch_loss(model, batch)
                    accelerator.backward(loss)                                # divides by accumulation steps
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    run.optimizer.step()                                      # no-ops while accumulating
                    run.scheduler.step()
                    run.optimizer.zero_grad()
                state.batches_done += 1
                meter.add(loss, samples)
                if not accelerator.sync_gradients:
                    continue
                state.global_step += 1
                if state.global_step % config.log_every_steps == 0:
                    on_progress(state.global_step, _training_values(run, state, meter))
                if config.eval_every_steps and state.global_step % config.eval_every_steps == 0:
                    evaluate_run(run, state, on_progress)
                    if patience_spent(config, state.evals_without_improvement):
                        return "early_stopping"
                stop_reason = end_of_step(run, state, meter, should_stop, task.checkpoint_tokenizer)
                if stop_reason:
                    return stop_reason
        finally:  # leaving mid-epoch too: drop the loader from accelerate's process-wide stack
            if hasattr(batches, "end"):
                batches.end()
            if batches is not run.train_loader:  # the resumed epoch's own loader: its workers end here
                close_workers(batches)
        state.epoch, state.batches_done = epoch + 1, 0
        if run.evaluated_at != state.global_step:
            evaluate_run(run, state, on_progress)
        save_run_checkpoint(run, state, meter, task.checkpoint_tokenizer)
        if patience_spent(config, state.evals_without_improvement):
            return "early_stopping"
    return "completed"


def _start_epoch(loader: DataLoader, epoch: int) -> None:
    """Seed the epoch's order: the prepared loader tells its sampler; with N processes our sampler
    sits one level deeper, inside accelerate's shard."""
    loader.set_epoch(epoch)
    sharded = getattr(loader.batch_sampler, "batch_sampler", None)
    if hasattr(sharded, "set_epoch"):
        sharded.set_epoch(epoch)


def close_workers(loader: DataLoader) -> None:
    """Shut down a loader's persistent worker processes now.

    A DataLoader with persistent workers keeps them until its iterator is garbage collected, and
    a prepared loader stays referenced (Accelerate's state, the run) for as long as anything holds
    the run: so the run shuts them down itself when it ends. Iterating again starts new ones.
    """
    base = getattr(loader, "base_dataloader", loader)  # accelerate's DataLoaderShard wraps a DataLoader
    iterator = getattr(base, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    if iterator is not None:
        base._iterator = None


@contextlib.contextmanager
def _closing_workers(run: EpochRun) -> Iterator[None]:
    """Around the steps and the final evaluation: the loaders' worker processes end with the run."""
    try:
        yield
    finally:
        for loader in (run.train_loader, run.eval_loader):
            close_workers(loader)


def _training_values(run: EpochRun, state: EpochState, meter: Meter) -> dict[str, float]:
    loss, per_second = meter.take()
    return {"train_loss": loss, "learning_rate": float(run.scheduler.get_last_lr()[0]),
            "samples_per_second": per_second, "eta_seconds": meter.clock.eta(state.global_step, run.total_steps),
            **position(state, run.steps_per_epoch, run.total_steps)}


def evaluate_run(run: EpochRun, state: EpochState, on_progress: ProgressFn) -> None:
    """Evaluate, report, and keep the model when it is the best so far."""
    # With several processes every rank scores the whole validation split with the plain module (no
    # DDP collectives in evaluation), so all ranks take the same best-model and early-stopping decisions.
    scored = plain_model(run) if run.accelerator.num_processes > 1 else run.model
    with run.phases.measure("evaluation"):
        scored.eval()
        with torch.no_grad():
            metrics = run.task.evaluate(scored, run.eval_loader, run.accelerator.device)
        scored.train()
    keep_if_best(run, state, metrics, run.task.save)
    on_progress(state.global_step, {**run.task.progress(metrics),
                                    **position(state, run.steps_per_epoch, run.total_steps)})


class Epochs:
    """The strategy `run_strategy` drives; `setup(config, dataset, output_dir, accelerator, checkpoint,
    settings)` is the task's and returns an EpochRun (from `prepare_run`)."""

    State = EpochState
    fit = staticmethod(fit)
    evaluate = staticmethod(evaluate_run)
    context = staticmethod(_closing_workers)

    def __init__(self, setup: Callable[..., EpochRun]) -> None:
        self.setup = setup

    @staticmethod
    def restore_best(model: nn.Module, run: EpochRun) -> None:
        """Put the best weights back: kept in memory, or (the best came before a resume) the saved model."""
        weights = run.best_weights if run.best_weights is not None else run.task.saved_weights(run.output_dir)
        restore_weights(model, weights)

    @staticmethod
    def served(model: nn.Module, run: EpochRun) -> dict:
        return run.task.served(model, run)

    @staticmethod
    def final_metrics(model: nn.Module, run: EpochRun, metrics: dict) -> dict:
        final = getattr(run.task, "final_metrics", None)
        return final(model, metrics) if final is not None else metrics
