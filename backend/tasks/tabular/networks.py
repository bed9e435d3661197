"""The neural table templates' networks (mlp, ft-transformer) built for a fitted preprocessor, their
predictions, and what a fit of any tabular template returns.

They train on the shared core's epochs strategy (neural_training.py); gbdt trains with LightGBM
(gbdt.py). Both hand back a `FitResult` when fitted outside a stored dataset (fitting.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from backend.tasks.tabular.config import FtTransformerTemplate, MlpTemplate
from backend.tasks.tabular.ft_transformer import FtTransformer
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
    best_step: int                     # optimizer step (neural) or boosting round (gbdt) of the kept model
    steps: int                         # optimizer steps or rounds actually run
    stop_reason: str                   # "completed" | "early_stopping" | "time_budget"
    history: list[dict] = field(default_factory=list)  # one entry per evaluation


def build_network(template: MlpTemplate | FtTransformerTemplate, preprocessor: Preprocessor) -> nn.Module:
    """The template's network for this preprocessor's inputs and task."""
    out = len(preprocessor.classes) if preprocessor.spec.task == "classification" else 1
    network = TabularMlp if template.kind == "mlp" else FtTransformer
    return network(template, preprocessor.numeric_width, preprocessor.cardinalities, out)


@torch.no_grad()
def predict_network(model: nn.Module, rows: EncodedRows, task: str) -> np.ndarray:
    """Class probabilities [n, k] or standardised values [n], computed on the model's device."""
    model.eval()
    device = next(model.parameters()).device   # a model just trained on a GPU stays there
    outputs = []
    for start in range(0, len(rows), EVAL_BATCH_SIZE):
        batch = rows.take(np.arange(start, min(start + EVAL_BATCH_SIZE, len(rows))))
        logits = model(torch.from_numpy(batch.numeric).to(device), torch.from_numpy(batch.categorical).to(device))
        logits = logits.float()
        outputs.append((torch.softmax(logits, dim=1) if task == "classification" else logits[:, 0]).cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0,))
