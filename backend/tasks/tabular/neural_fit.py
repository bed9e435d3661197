"""Fit the neural tabular templates (mlp, ft-transformer): AdamW, shuffled batches, best-by-validation.

Kept simple on purpose so the shared Accelerate training core (issue 13) can adopt it: the loop
reports through `on_progress(step, values)`, checks `should_stop()` between optimizer steps (and
raises Cancelled), and knows nothing of printing or saving. The model with the best validation
score (accuracy, or RMSE for regression) is kept and returned.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from backend.errors import Cancelled
from backend.tasks.tabular.config import FtTransformerTemplate, MlpTemplate, TabularFitSettings
from backend.tasks.tabular.ft_transformer import FtTransformer
from backend.tasks.tabular.metrics import classification_metrics, regression_metrics
from backend.tasks.tabular.mlp import TabularMlp
from backend.tasks.tabular.preprocessing import EncodedRows, Preprocessor

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, dict[str, float]], None]
EVAL_BATCH_SIZE = 4096


@dataclass
class FitResult:
    """What a fit returns: the trained model, its best validation metrics and when it was reached."""

    model: object                      # nn.Module (eval mode) or lightgbm.Booster
    metrics: dict
    best_step: int                     # epoch (neural) or boosting round (gbdt) of the kept model
    steps: int                         # optimizer steps or rounds actually run
    stop_reason: str                   # "completed" | "early_stopping" | "time_budget"
    history: list[dict] = field(default_factory=list)


def build_network(template: MlpTemplate | FtTransformerTemplate, preprocessor: Preprocessor) -> nn.Module:
    """The template's network for this preprocessor's inputs and task."""
    out = len(preprocessor.classes) if preprocessor.spec.task == "classification" else 1
    network = TabularMlp if template.kind == "mlp" else FtTransformer
    return network(template, preprocessor.numeric_width, preprocessor.cardinalities, out)


@torch.no_grad()
def predict_network(model: nn.Module, rows: EncodedRows, task: str) -> np.ndarray:
    """Class probabilities [n, k] or standardised values [n]."""
    model.eval()
    outputs = []
    for start in range(0, len(rows), EVAL_BATCH_SIZE):
        batch = rows.take(np.arange(start, min(start + EVAL_BATCH_SIZE, len(rows))))
        logits = model(torch.from_numpy(batch.numeric), torch.from_numpy(batch.categorical))
        outputs.append(torch.softmax(logits, dim=1) if task == "classification" else logits[:, 0])
    return torch.cat(outputs).numpy() if outputs else np.zeros((0,))


def evaluate(model: nn.Module, preprocessor: Preprocessor, rows: EncodedRows, target: np.ndarray) -> dict:
    """Validation metrics (regression in the target's own units)."""
    output = predict_network(model, rows, preprocessor.spec.task)
    if preprocessor.spec.task == "classification":
        return classification_metrics(target, output)
    return regression_metrics(preprocessor.decode_regression(target), preprocessor.decode_regression(output))


def fit_network(template: MlpTemplate | FtTransformerTemplate, preprocessor: Preprocessor,
                train: EncodedRows, train_target: np.ndarray, validation: EncodedRows, validation_target: np.ndarray,
                settings: TabularFitSettings, on_progress: ProgressFn = lambda step, values: None,
                should_stop: Callable[[], bool] = lambda: False) -> FitResult:
    """Train the template's network; returns the best-by-validation model (in eval mode)."""
    started = time.monotonic()

    def out_of_time() -> bool:
        return bool(settings.time_budget_seconds) and time.monotonic() - started >= settings.time_budget_seconds

    torch.manual_seed(settings.seed)
    task = preprocessor.spec.task
    known = train_target >= 0 if task == "classification" else np.isfinite(train_target)
    train, train_target = train.take(np.flatnonzero(known)), train_target[known]
    model = build_network(template, preprocessor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate_for(template.kind),
                                  weight_decay=settings.weight_decay_or_default())
    loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    targets = torch.from_numpy(train_target)
    generator = np.random.default_rng(settings.seed)
    best, best_state, best_epoch, history = None, None, 0, []
    stale, step, stop_reason = 0, 0, "completed"
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = generator.permutation(len(train))
        for start in range(0, len(order), settings.batch_size):
            index = order[start:start + settings.batch_size]
            batch = train.take(index)
            output = model(torch.from_numpy(batch.numeric), torch.from_numpy(batch.categorical))
            loss = loss_fn(output if task == "classification" else output[:, 0], targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % settings.log_every_steps == 0:
                # .item() syncs with the device: only when reporting
                on_progress(step, {"train_loss": loss.item(), "epoch": epoch})
            if should_stop():
                raise Cancelled()
            if out_of_time():
                break   # evaluate what the budget allowed, then stop
        metrics = evaluate(model, preprocessor, validation, validation_target)
        score = metrics["accuracy"] if task == "classification" else -metrics["rmse"]
        on_progress(step, {"epoch": epoch, **{f"val_{k}": v for k, v in metrics.items() if isinstance(v, float)}})
        history.append({"epoch": epoch, "step": step, **metrics})
        if best is None or score > best:
            best, best_epoch, best_metrics, stale = score, epoch, metrics, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if settings.early_stopping_patience and stale >= settings.early_stopping_patience:
            stop_reason = "early_stopping"
            break
        if out_of_time():
            stop_reason = "time_budget"
            break
    model.load_state_dict(best_state)
    model.eval()
    log.info("%s: best epoch %d of %d (%s), %.1f s", template.kind, best_epoch, len(history), stop_reason,
             time.monotonic() - started)
    return FitResult(model=model, metrics=best_metrics, best_step=best_epoch, steps=step,
                     stop_reason=stop_reason, history=history)
