"""The toy task's strategy for the shared training core: full-batch epochs of a linear layer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from torch import nn

from backend.data.store import load_split
from backend.errors import Cancelled
from backend.training.checkpoints import publish, save_checkpoint
from backend.training.core import best_weights, build_optimizer, cpu_copy, run_strategy


def features(texts: list[str], scale: float) -> torch.Tensor:
    """(N, 2): characters and words, in units of `scale`."""
    return torch.tensor([[len(t) / scale, len(t.split())] for t in texts], dtype=torch.float32)


class Regressor:
    """Predicts the number of each text with a trained linear layer."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        self.model, self.scale = model.cpu().eval(), scale

    def predict(self, texts: list[str]) -> list[float]:
        with torch.no_grad():
            return self.model(features(texts, self.scale)).squeeze(-1).tolist()


@dataclass
class State:
    global_step: int = 0
    epoch: int = 0
    best_mse: float | None = None
    best_step: int = 0
    best_metrics: dict = field(default_factory=dict)


@dataclass
class Run:
    config: object
    accelerator: object
    model: nn.Module
    optimizer: object
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    output_dir: Path
    best_weights: dict | None = None
    evaluated_at: int = -1


def _split(dataset, name: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    frame = load_split(dataset, name)
    return features(frame["text"].astype(str).tolist(), scale), torch.tensor(frame["label"].astype(float).values,
                                                                              dtype=torch.float32)


def setup(config, dataset, output_dir, accelerator, checkpoint, settings):
    set_seed(config.seed)
    model = nn.Linear(2, 1)
    optimizer = build_optimizer(model, config, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)
    scale = config.template.scale
    return Run(config, accelerator, model, optimizer, _split(dataset, "train", scale),
               _split(dataset, "validation", scale), output_dir)


def fit(run: Run, state: State, on_progress, should_stop) -> str:
    inputs, targets = (t.to(run.accelerator.device) for t in run.train)
    for epoch in range(state.epoch, run.config.epochs):
        loss = F.mse_loss(run.model(inputs).squeeze(-1), targets)
        run.accelerator.backward(loss)
        run.optimizer.step()
        run.optimizer.zero_grad()
        state.global_step, state.epoch = state.global_step + 1, epoch + 1
        on_progress(state.global_step, {"train_loss": loss.item(), "progress": state.epoch / run.config.epochs})
        evaluate(run, state, on_progress)
        save_checkpoint(run.accelerator, run.output_dir, state, None)
        if should_stop():
            raise Cancelled()
    return "completed"


def evaluate(run: Run, state: State, on_progress) -> None:
    inputs, targets = (t.to(run.accelerator.device) for t in run.validation)
    with torch.no_grad():
        mse = F.mse_loss(run.model(inputs).squeeze(-1), targets).item()
    run.evaluated_at = state.global_step
    if state.best_mse is None or mse < state.best_mse:
        state.best_mse, state.best_step, state.best_metrics = mse, state.global_step, {"mse": mse}
        model = run.accelerator.unwrap_model(run.model)
        run.best_weights = cpu_copy(model)
        publish(run.output_dir, lambda folder: _save(model, run.config.template.scale, folder))
    on_progress(state.global_step, {"eval_mse": mse})


def _save(model: nn.Module, scale: float, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_kind": "toy-linear", "scale": scale}), encoding="utf-8")


def restore_best(model: nn.Module, run: Run) -> None:
    model.load_state_dict(best_weights(run))


class _Strategy:
    State = State
    setup = staticmethod(setup)
    fit = staticmethod(fit)
    evaluate = staticmethod(evaluate)
    restore_best = staticmethod(restore_best)

    @staticmethod
    def served(model, run) -> dict:
        return {"predictor": Regressor(model, run.config.template.scale)}


def train_regressor(config, dataset, output_dir, on_progress, should_stop, resume, accelerator, settings=None):
    return run_strategy(_Strategy(), config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                        settings)


def load_regressor(folder: Path) -> Regressor:
    model = nn.Linear(2, 1)
    model.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
    scale = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["scale"]
    return Regressor(model, scale)


def estimate(config, dataset):
    raise NotImplementedError("the toy task has no estimate")


def render_card(config, dataset, metrics, *, best_step=0, stop_reason="completed") -> str:
    return f"# {config.name or 'toy regressor'}\n\nValidation MSE {metrics.get('mse', float('nan')):.4f} at step {best_step}.\n"
