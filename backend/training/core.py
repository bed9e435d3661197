"""The one training core every task shares: setup -> fit -> evaluate -> checkpoint -> finish, on Accelerate.

A task trains through a `Strategy`: the loop shape that suits it. Two exist — epochs over a
dataloader (`backend.training.epochs`: text and image classification, the neural table templates,
each through a small per-task `EpochTask`) and random windows of a token stream
(`backend.training.windows`, language models) — and both run inside `run_strategy`, which owns
what every run does the same way: start or resume from a checkpoint, make the final evaluation,
put the best weights back, write metrics.json and the model card, and remove the checkpoints.
What the two loops do alike between their steps lives here too: the `Meter` (training loss,
throughput, the run's clock), `keep_if_best` (an evaluation recorded, the best model kept),
`save_run_checkpoint`, `end_of_step` (time budget and Stop) and `restore_weights`.

Also here, so training and the Estimate agree: the optimizer (`build_optimizer`), the linear
warm-up schedule, and (from backend.tasks.base, which templates import without loading Accelerate)
`clamp_length`, the one place a max_length / block_size meets its limits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch import nn
from transformers import get_linear_schedule_with_warmup

from backend.config import TrainConfig
from backend.errors import Cancelled
from backend.settings import Settings
from backend.sharing.model_card import write_model_card
from backend.tasks.base import clamp_length  # noqa: F401 (the strategies and the estimate import it from here)
from backend.tasks.registry import get_task
from backend.training.checkpoints import (CHECKPOINTS_DIR, begin_run, load_checkpoint, publish,
                                          publishing_in_background, save_checkpoint)
from backend.training.phases import METRICS_KEY as TIMING_KEY
from backend.training.phases import PhaseTimes, describe
from backend.training.run_clock import RunClock
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, dict[str, float]], None]
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")  # where torch has a fused AdamW kernel for float32 weights


@dataclass
class TrainResult:
    """What a finished run hands back: best validation metrics and where its model is."""

    # classification: accuracy, macro_precision, macro_recall, macro_f1, loss, per_class, confusion_matrix,
    # labels; text generation: loss, perplexity, bits_per_char, train_loss, ... (see backend.training.windows)
    metrics: dict
    best_step: int
    output_dir: Path
    stop_reason: str = "completed"  # completed | early_stopping | time_budget
    predictor: Any | None = field(default=None, repr=False)  # the best classifier, still in memory
    generator: Any | None = field(default=None, repr=False)  # the best language model (text generation)


class Strategy(Protocol):
    """One loop shape. `setup` does the I/O and builds a run object (with .accelerator, .model,
    .output_dir, .evaluated_at, .phases); `fit` loops and returns why it stopped; `evaluate` scores the model
    and keeps it when it is the best so far; `served` is what the result hands back in memory."""

    State: type  # dataclass saved with every checkpoint: global_step, best_step, best_metrics, ...

    def setup(self, config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
              checkpoint: Path | None, settings: Settings): ...

    def fit(self, run, state, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> str: ...

    def evaluate(self, run, state, on_progress: ProgressFn) -> None: ...

    def restore_best(self, model: nn.Module, run) -> None: ...

    def served(self, model: nn.Module, run) -> dict: ...


@dataclass
class LoopState:
    """Where any loop stands; saved with every checkpoint (a strategy's State adds its own fields)."""

    global_step: int = 0           # optimizer steps done
    best_score: float | None = None  # the task's best_metric at the best evaluation so far
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)
    evals_without_improvement: int = 0
    elapsed_seconds: float = 0.0   # training time before this session (for the time budget)


def run_strategy(strategy: Strategy, config: TrainConfig, dataset: DatasetRecord, output_dir: Path,
                 on_progress: ProgressFn, should_stop: Callable[[], bool], resume: bool,
                 accelerator: Accelerator, settings: Settings | None = None) -> TrainResult:
    """Train with `strategy`: setup, fit, a final evaluation, then finish; resume=True continues a checkpoint.

    `settings`: the runner's (machine settings a setup reads, e.g. the image cache); None = the environment's.
    """
    phases = PhaseTimes()
    with phases.measure("setup"):
        checkpoint = begin_run(config.model_dump_json(indent=2), output_dir, resume)
        run = strategy.setup(config, dataset, output_dir, accelerator, checkpoint,
                             settings if settings is not None else Settings())
        state = load_checkpoint(accelerator, checkpoint, strategy.State) if checkpoint else strategy.State()
    run.phases = phases  # the strategy marks evaluation, checkpoints and saving inside the steps
    # Checkpoints are made durable on a background thread while the next steps train; leaving
    # this block (at the end, on Stop or on an error) waits until the last one is published.
    with publishing_in_background(output_dir), getattr(strategy, "context", _no_context)(run):
        with phases.measure("steps"):
            stop_reason = strategy.fit(run, state, on_progress, should_stop)
        if run.evaluated_at != state.global_step or not state.best_metrics:
            strategy.evaluate(run, state, on_progress)
    with phases.measure("finishing"):
        model = finish_run(run, state, config, dataset, stop_reason, strategy.restore_best,
                           getattr(strategy, "final_metrics", None))
    # This session's breakdown (a resumed run's earlier sessions are not in it).
    metrics = {**state.best_metrics, TIMING_KEY: phases.as_metrics()}
    log.info("time per phase: %s", describe(metrics[TIMING_KEY]))
    return TrainResult(metrics=metrics, best_step=state.best_step, output_dir=output_dir,
                       stop_reason=stop_reason, **strategy.served(model, run))


@contextlib.contextmanager
def _no_context(_run) -> Iterator[None]:
    yield


def finish_run(run, state, config: TrainConfig, dataset: DatasetRecord, stop_reason: str,
               restore_best: Callable[[nn.Module, object], None],
               final_metrics: Callable[[nn.Module, object, dict], dict] | None = None) -> nn.Module:
    """The end of every run: the unwrapped model with its best weights back, what the strategy measures
    once at the end added to its metrics, metrics.json and the model card written, checkpoints removed
    (nothing is left to resume)."""
    model = run.accelerator.unwrap_model(run.model, keep_fp32_wrapper=False, keep_torch_compile=False)
    restore_best(model, run)
    if final_metrics is not None:
        state.best_metrics = final_metrics(model, run, state.best_metrics)
    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:  # several ranks: rank 0 alone writes the run's files
        return model
    (run.output_dir / "metrics.json").write_text(json.dumps(state.best_metrics, indent=2), encoding="utf-8")
    write_model_card(run.output_dir, config, dataset, state.best_metrics, best_step=state.best_step,
                     stop_reason=stop_reason)
    shutil.rmtree(run.output_dir / CHECKPOINTS_DIR, ignore_errors=True)
    return model


@dataclass(kw_only=True)
class LoopRun:
    """What every strategy's run object holds (built once by its setup; a strategy adds its own fields)."""

    config: TrainConfig
    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    output_dir: Path
    steps_per_epoch: int
    total_steps: int
    best_weights: dict[str, torch.Tensor] | None = None  # CPU copy of the best model so far
    evaluated_at: int = -1                                # the step of the latest evaluation
    phases: PhaseTimes = field(default_factory=PhaseTimes)  # the core's clock, set by run_strategy


class Meter:
    """Training loss and throughput between two progress reports, and the run's clock."""

    def __init__(self, device: torch.device, state: LoopState, budget_seconds: float) -> None:
        self.loss_sum = torch.zeros((), device=device)  # summed on the device: .item() syncs, only to report
        self.weight, self.samples, self.window_start = 0, 0, time.monotonic()
        self.clock = RunClock(state.global_step, state.elapsed_seconds, budget_seconds)

    def add(self, loss: torch.Tensor, samples: int, weight: int | None = None) -> None:
        """Count a batch: its mean loss weighs `weight` (default: its samples) in the window's mean."""
        weight = samples if weight is None else weight
        self.loss_sum += loss.detach() * weight
        self.weight += weight
        self.samples += samples

    def take(self) -> tuple[float, float]:
        """The window's mean training loss and samples per second; starts a new window."""
        now = time.monotonic()
        loss = (self.loss_sum / max(self.weight, 1)).item()
        per_second = self.samples / max(now - self.window_start, 1e-9)
        self.loss_sum.zero_()
        self.weight, self.samples, self.window_start = 0, 0, now
        return loss, per_second


def save_run_checkpoint(run, state: LoopState, meter: Meter, tokenizer=None) -> None:
    """Save a resumable checkpoint of where the loop stands (its time counted as checkpoints)."""
    state.elapsed_seconds = meter.clock.spent()
    with run.phases.measure("checkpoints"):
        save_checkpoint(run.accelerator, run.output_dir, state, tokenizer)


def end_of_step(run, state: LoopState, meter: Meter, should_stop: Callable[[], bool], tokenizer=None) -> str | None:
    """After an optimizer step: "time_budget" when the budget is spent; Stop saves a checkpoint and
    raises Cancelled; None: go on."""
    if meter.clock.budget_spent():
        log.info("time budget of %.0f s spent at step %d", run.config.time_budget_seconds, state.global_step)
        return "time_budget"
    if should_stop():
        save_run_checkpoint(run, state, meter, tokenizer)
        raise Cancelled()
    return None


def keep_if_best(run, state: LoopState, metrics: dict, save: Callable[[nn.Module, Path], None]) -> None:
    """Record an evaluation at this step; when the task's metric beats the best so far, keep a CPU copy
    of the model and publish it with `save(model, folder)` (rank 0 alone writes)."""
    run.evaluated_at = state.global_step
    score = best_score(run.config, metrics)
    if improves(run.config, score, state.best_score):
        state.best_score, state.best_step, state.best_metrics = score, state.global_step, metrics
        state.evals_without_improvement = 0
        model = plain_model(run)
        with run.phases.measure("saving"):
            run.best_weights = cpu_copy(model)
            if run.accelerator.is_main_process:  # several ranks: rank 0 alone writes the model
                publish(run.output_dir, lambda folder: save(model, folder))
    else:
        state.evals_without_improvement += 1


def restore_weights(model: nn.Module, weights: dict[str, torch.Tensor], tied: tuple[str, ...] = ()) -> None:
    """Load the best weights into the in-memory model; names starting with `tied` may be missing
    (tied to another tensor), anything else missing or extra is logged."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [name for name in missing if not name.startswith(tied)] if tied else missing
    if missing or unexpected:
        log.warning("restoring the best weights: missing %s, unexpected %s", missing[:5], unexpected[:5])


def position(state: LoopState, steps_per_epoch: int, total_steps: int, progress: float | None = None) -> dict:
    """Where the run is, in the keys every progress report carries."""
    progress = state.global_step / total_steps if progress is None else progress
    return {"epoch": state.global_step / steps_per_epoch, "progress": progress, "total_steps": float(total_steps)}


def best_score(config: TrainConfig, metrics: dict) -> float:
    """The validation score that picks the best checkpoint: the metric the run's task names."""
    return float(metrics[get_task(config.task).best_metric])


def improves(config: TrainConfig, score: float, best: float | None) -> bool:
    """Whether `score` beats the best so far (None: nothing yet), in the direction the task says."""
    if best is None:
        return True
    return score > best if get_task(config.task).higher_is_better else score < best


def patience_spent(config: TrainConfig, evals_without_improvement: int) -> bool:
    """Early stopping: patience is set and that many evaluations in a row did not improve."""
    return 0 < config.early_stopping_patience <= evals_without_improvement


def compiled(model: nn.Module, config: TrainConfig) -> nn.Module:
    """The prepared model, through torch.compile when the run asks for it. Compiled after
    `accelerator.prepare`, so Accelerate's checkpoints keep the plain module's parameter names."""
    if not config.torch_compile:
        return model
    log.info("compiling the model with torch.compile (the first step waits for it)")
    return torch.compile(model)


def plain_model(run) -> nn.Module:
    """The model being trained without Accelerate's or torch.compile's wrappers: what is evaluated
    for saving, copied as the best weights and written to disk (no `_orig_mod.` key prefixes)."""
    return run.accelerator.unwrap_model(run.model, keep_torch_compile=False)


def cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of a model's weights: the best model so far, kept in memory."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def best_weights(run) -> dict[str, torch.Tensor]:
    """The best weights: kept in memory, or (when the best came before a resume) our saved file."""
    if run.best_weights is not None:
        return run.best_weights
    return best_weights_file(run.output_dir)


def best_weights_file(output_dir: Path) -> dict[str, torch.Tensor]:
    """The weights of the best model saved in `output_dir` (model.safetensors), on the CPU."""
    return load_file(str(Path(output_dir) / "model.safetensors"), device="cpu")


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay on biases and norm weights (1-D
    tensors, as in nanoGPT and BERT). Training and the Estimate both build it here."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}],
        lr=config.learning_rate, betas=betas,
        # One fused kernel for all parameters instead of a Python loop over them: the Trainer's
        # default too (adamw_torch_fused); on a CPU the per-tensor loop costs 15-20% of a small model's step.
        fused=device.type in FUSED_OPTIMIZER_DEVICES)


def linear_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """Linear warm-up over `warmup_ratio` of the steps, then linear decay to zero."""
    return get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
