"""The epochs strategy of the training core: a text classifier, epochs over a dataloader.

Shape of accelerate's examples/nlp_example.py: read the splits, build model + tokenizer, build
dataloaders, `accelerator.prepare(...)`, loop over epochs, evaluate, keep the best. The loop
knows nothing of the DB or the UI: it reports through `on_progress(step, values)` and checks
`should_stop()` between optimizer steps. `backend.training.core.run_strategy` runs it (resume,
final evaluation, finish); `backend.training.run.train` is the entry point of every run.

What lands in `output_dir`:
    model.safetensors, config.json, tokenizer files   the best model (validation macro F1)
    run_config.json, metrics.json, README.md           the config, best metrics, model card
    checkpoints/step-00000120/                         resumable state, last 2 (removed on success)

Batching lives in `backend.tasks.text_classification.batching`, checkpoints in `backend.training.checkpoints`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from backend.tasks.text_classification.batching import (Collator, EncodedDataset, LengthGroupedSampler,  # noqa: F401
                                                        check_ids, eval_loader, read_split)
from backend.config import TrainConfig
from backend.errors import Cancelled, UserError
from backend.tasks.text_classification.metrics import classification_metrics
from backend.tasks.text_classification.predictor import Predictor
from backend.training.checkpoints import latest_checkpoint, publish, save_checkpoint  # noqa: F401 (re-exported)
from backend.training.core import (ProgressFn, TrainResult, best_score, best_weights, build_optimizer, clamp_length,
                                   compiled, cpu_copy, improves, linear_schedule, patience_spent, plain_model,
                                   run_strategy)
from backend.training.phases import PhaseTimes
from backend.training.run_clock import RunClock
from backend.tasks.text_classification.templates import (OWN_TOKENIZER_KINDS, build_model, logits_of, num_labels_of,
                                                        save_model, vocab_size_of)
from backend.tasks.text_classification.tokenization import encode, load_tokenizer_file
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

ADAM_BETAS = (0.9, 0.999)  # AdamW's defaults: the classifier templates were tuned with them


@dataclass
class TrainState:
    """Where training stands; saved with every checkpoint."""

    global_step: int = 0         # optimizer steps done
    epoch: int = 0               # current epoch (0-based)
    batches_done: int = 0        # batches of the current epoch already trained on
    best_metric: float = -1.0    # best validation macro F1 so far
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)
    evals_without_improvement: int = 0
    elapsed_seconds: float = 0.0  # training time before this session (for the time budget)



# --- the run --------------------------------------------------------------------------------

@dataclass
class _Setup:
    """Everything the loop needs, built once by `_setup`."""

    config: TrainConfig
    accelerator: Accelerator
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: DataLoader
    eval_loader: DataLoader
    labels: list[str]
    max_length: int
    output_dir: Path
    steps_per_epoch: int
    total_steps: int
    best_weights: dict[str, torch.Tensor] | None = None  # CPU copy of the best model so far
    evaluated_at: int = -1
    phases: PhaseTimes = field(default_factory=PhaseTimes)  # the core's clock, set by run_strategy


def train_classifier(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
                     should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator) -> TrainResult:
    """Train `config.template` (a classifier) on `dataset`; the best model (macro F1) lands in `output_dir`."""
    return run_strategy(EPOCHS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator)


def _setup(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
           checkpoint: Path | None) -> _Setup:
    """Read the splits, build model and tokenizer, dataloaders, optimizer and schedule; prepare them."""
    labels = list(dataset.labels)
    if len(labels) < 2:
        raise UserError(f"Dataset '{dataset.name}' has {len(labels)} class(es); a classifier needs at least 2. "
                        "Pick another label column or add examples of other classes.")
    set_seed(config.seed)  # python, numpy, torch (+cuda): weights, dropout and shuffling repeat
    train_texts, train_labels = read_split(dataset, "train", labels)
    val_texts, val_labels = read_split(dataset, "validation", labels)
    if not train_texts or not val_texts:
        raise UserError(f"Dataset '{dataset.name}' needs rows in both its training and validation splits; "
                        "upload it again with a validation share above 0.")
    saved_tokenizer = None
    if checkpoint is not None and config.template.kind in OWN_TOKENIZER_KINDS:
        saved_tokenizer = load_tokenizer_file(str(checkpoint / "tokenizer.json"), config.max_length)
    model, tokenizer = build_model(config, labels, train_texts, saved_tokenizer)
    max_length = clamp_length(config.max_length, tokenizer.model_max_length)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_rows, val_rows = encode(tokenizer, train_texts, max_length), encode(tokenizer, val_texts, max_length)
    for rows, label_ids, split in ((train_rows, train_labels, "training"), (val_rows, val_labels, "validation")):
        check_ids(rows, label_ids, vocab_size_of(model), num_labels_of(model), split)

    sampler = LengthGroupedSampler([len(row) for row in train_rows], config.batch_size, config.seed)
    # A DataLoader draws a seed from the global RNG each time it is iterated, unless it has its own
    # generator; with one, dropout draws the same numbers whether or not a run was resumed.
    train_loader = DataLoader(EncodedDataset(train_rows, train_labels), batch_sampler=sampler,
                              collate_fn=Collator(pad_token_id), generator=torch.Generator().manual_seed(config.seed))
    eval_loader_ = eval_loader(val_rows, val_labels, config.batch_size * 2, pad_token_id)
    optimizer = build_optimizer(model, config, accelerator.device, ADAM_BETAS)
    # The last, short accumulation window of an epoch still steps (accelerate syncs at the end of
    # the dataloader), hence the ceil. The schedule counts the steps of one process; with N
    # processes accelerate steps it N times per optimizer step, so it spans the same samples.
    scheduler = linear_schedule(optimizer, config,
                                math.ceil(len(train_loader) / config.gradient_accumulation_steps) * config.epochs)

    accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    # Steps each process takes (its shard of every epoch): what progress and resume count.
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    model = compiled(model, config)
    log.info("training %s on %d rows (%d steps) on %s", config.template.kind, len(train_rows), total_steps,
             accelerator.device)
    return _Setup(config=config, accelerator=accelerator, model=model, tokenizer=tokenizer, optimizer=optimizer,
                  scheduler=scheduler, train_loader=train_loader, eval_loader=eval_loader_, labels=labels,
                  max_length=max_length, output_dir=output_dir, steps_per_epoch=steps_per_epoch,
                  total_steps=total_steps)


class _Meter:
    """Training loss and throughput between two progress reports, and the run's clock."""

    def __init__(self, device: torch.device, state: TrainState, time_budget_seconds: float) -> None:
        self.loss_sum = torch.zeros((), device=device)  # summed on the device: .item() only to report
        self.samples, self.window_start = 0, time.monotonic()
        self.clock = RunClock(state.global_step, state.elapsed_seconds, time_budget_seconds)

    def add(self, loss: torch.Tensor, samples: int) -> None:
        self.loss_sum += loss.detach() * samples
        self.samples += samples

    def report(self, run: _Setup, state: TrainState) -> dict[str, float]:
        """Progress values for on_progress; starts a new window."""
        now = time.monotonic()
        values = {"train_loss": (self.loss_sum / max(self.samples, 1)).item(),
                  "learning_rate": float(run.scheduler.get_last_lr()[0]),
                  "samples_per_second": self.samples / max(now - self.window_start, 1e-9),
                  "eta_seconds": self.clock.eta(state.global_step, run.total_steps), **_position(run, state)}
        self.loss_sum.zero_()
        self.samples, self.window_start = 0, now
        return values


def _fit(run: _Setup, state: TrainState, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> str:
    """The training loop; returns why it ended: completed, early_stopping or time_budget."""
    accelerator, config, model = run.accelerator, run.config, run.model
    meter = _Meter(accelerator.device, state, config.time_budget_seconds)
    tokenizer_to_save = run.tokenizer if config.template.kind in OWN_TOKENIZER_KINDS else None

    def checkpoint() -> None:
        """Save a resumable checkpoint of where the loop stands."""
        state.elapsed_seconds = meter.clock.spent()
        with run.phases.measure("checkpoints"):
            save_checkpoint(accelerator, run.output_dir, state, tokenizer_to_save)

    model.train()
    for epoch in range(state.epoch, config.epochs):
        run.train_loader.set_epoch(epoch)
        sharded = getattr(run.train_loader.batch_sampler, "batch_sampler", None)  # N processes: our sampler, inside
        if hasattr(sharded, "set_epoch"):
            sharded.set_epoch(epoch)
        batches = run.train_loader
        if state.batches_done:  # resuming mid-epoch: same order, skip what was already trained on
            batches = accelerator.skip_first_batches(run.train_loader, state.batches_done)
        try:
            for batch in batches:
                with accelerator.accumulate(model):
                    logits = logits_of(model, batch)                          # (B, C)
                    loss = F.cross_entropy(logits.float(), batch["labels"])
                    accelerator.backward(loss)                                # divides by accumulation steps
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    run.optimizer.step()                                      # no-ops while accumulating
                    run.scheduler.step()
                    run.optimizer.zero_grad()
                state.batches_done += 1
                meter.add(loss, len(batch["labels"]))
                if not accelerator.sync_gradients:
                    continue
                state.global_step += 1
                if state.global_step % config.log_every_steps == 0:
                    on_progress(state.global_step, meter.report(run, state))
                if config.eval_every_steps and state.global_step % config.eval_every_steps == 0:
                    _evaluate(run, state, on_progress)
                    if patience_spent(config, state.evals_without_improvement):
                        return "early_stopping"
                if meter.clock.budget_spent():
                    log.info("time budget of %.0f s spent at step %d", config.time_budget_seconds, state.global_step)
                    return "time_budget"
                if should_stop():
                    checkpoint()
                    raise Cancelled()
        finally:  # leaving mid-epoch too: drop the loader from accelerate's process-wide stack
            if hasattr(batches, "end"):
                batches.end()
        state.epoch, state.batches_done = epoch + 1, 0
        if run.evaluated_at != state.global_step:
            _evaluate(run, state, on_progress)
        checkpoint()
        if patience_spent(config, state.evals_without_improvement):
            return "early_stopping"
    return "completed"


def _position(run: _Setup, state: TrainState) -> dict[str, float]:
    return {"epoch": state.global_step / run.steps_per_epoch, "progress": state.global_step / run.total_steps,
            "total_steps": float(run.total_steps)}


def evaluate(model: nn.Module, loader: DataLoader, labels: Sequence[str], device: torch.device) -> dict:
    """Loss and classification metrics of `model` over `loader`."""
    model.eval()
    loss_sum, true_ids, predicted_ids = 0.0, [], []
    with torch.no_grad():
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = logits_of(model, batch)                                  # (B, C)
            loss_sum += F.cross_entropy(logits.float(), batch["labels"], reduction="sum").item()
            predicted_ids.extend(logits.argmax(dim=-1).tolist())
            true_ids.extend(batch["labels"].tolist())
    model.train()
    return classification_metrics(true_ids, predicted_ids, labels, loss=loss_sum / max(len(true_ids), 1))


def _evaluate(run: _Setup, state: TrainState, on_progress: ProgressFn) -> None:
    """Evaluate, report, and save the model when its macro F1 beats the best so far."""
    # With several processes every rank scores the whole validation split with the plain module (no
    # DDP collectives in evaluation), so all ranks take the same best-model and early-stopping decisions.
    scored = plain_model(run) if run.accelerator.num_processes > 1 else run.model
    with run.phases.measure("evaluation"):
        metrics = evaluate(scored, run.eval_loader, run.labels, run.accelerator.device)
    run.evaluated_at = state.global_step
    score = best_score(run.config, metrics)  # macro F1 (the task's best_metric)
    if improves(run.config, score, state.best_metric):
        state.best_metric, state.best_step, state.best_metrics = score, state.global_step, metrics
        state.evals_without_improvement = 0
        model = plain_model(run)
        with run.phases.measure("saving"):
            run.best_weights = cpu_copy(model)
            if run.accelerator.is_main_process:  # several ranks: rank 0 alone writes the model
                _save_best(model, run)
    else:
        state.evals_without_improvement += 1
    on_progress(state.global_step, {
        "eval_loss": metrics["loss"], "eval_accuracy": metrics["accuracy"], "eval_macro_f1": metrics["macro_f1"],
        "eval_macro_precision": metrics["macro_precision"], "eval_macro_recall": metrics["macro_recall"],
        **_position(run, state)})


def _save_best(model: nn.Module, run: _Setup) -> None:
    publish(run.output_dir, lambda folder: save_model(model, run.tokenizer, run.labels, run.max_length, folder))


def _restore_best(model: nn.Module, run: _Setup) -> None:
    """Put the best weights back into the in-memory model (from memory, or from our saved file)."""
    missing, unexpected = model.load_state_dict(best_weights(run), strict=False)
    if missing or unexpected:
        log.warning("restoring the best weights: missing %s, unexpected %s", missing[:5], unexpected[:5])


class _Epochs:
    """The strategy `run_strategy` drives: epochs over a length-grouped dataloader."""

    State = TrainState
    setup = staticmethod(_setup)
    fit = staticmethod(_fit)
    evaluate = staticmethod(_evaluate)
    restore_best = staticmethod(_restore_best)

    @staticmethod
    def served(model: nn.Module, run: _Setup) -> dict:
        return {"predictor": Predictor(model, run.tokenizer, run.labels, run.max_length, run.accelerator.device)}


EPOCHS = _Epochs()
