"""How the neural table templates (mlp, ft-transformer) train: their part of the epochs strategy.

The loop is the shared core's (backend.training.epochs): Accelerate places model and batches on
the device, a checkpoint is saved every epoch, Stop saves one and cancels, resume continues from
it as if never interrupted, early stopping and the time budget end a run, and the best model by
the task's metric (validation accuracy, or RMSE for regression) is kept. What is the table's own:
the preprocessing fitted on the training split (deterministic, so a resumed run rebuilds the same
one), batches of encoded rows (standardised numerics + category codes), a cross-entropy or
squared-error loss, scikit-learn's metrics, and, once at the end, permutation importance; a time
budget covers that end too (budget.py: training stops early enough to leave room for it).

`fit_network` runs the same strategy on data frames outside a stored dataset (the template tests,
bench/bench_tabular.py), in a temporary folder.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backend.config import TrainConfig
from backend.data.store import load_split
from backend.errors import UserError
from backend.settings import Settings
from backend.tasks.tabular.budget import plan_budget, seconds_per_row
from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.config import TabularFitSettings
from backend.tasks.tabular.metrics import classification_metrics, regression_metrics
from backend.tasks.tabular.model_io import IMPORTANCE_ROWS, TabularModel
from backend.tasks.tabular.networks import FitResult, ProgressFn, build_network
from backend.tasks.tabular.prepare import table_spec
from backend.tasks.tabular.preprocessing import EncodedRows, Preprocessor
from backend.tasks.tabular.validation import check_rows
from backend.training.core import TrainResult, best_weights_file, run_strategy
from backend.training.epochs import EpochRun, Epochs, EpochShuffle, prepare_run
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

IMPORTANCE_REPEATS = 3   # shuffles per column: enough to rank columns, cheap on a validation split
EVAL_BATCH_SIZE = 4096   # rows per validation batch: a table's rows are small


def _as_is(batch: dict) -> dict:
    return batch  # RowsDataset.__getitems__ already made the batch


class RowsDataset(Dataset):
    """Encoded rows and their targets; a batch is cut in one indexing operation (no per-row collate)."""

    def __init__(self, rows: EncodedRows, target: np.ndarray) -> None:
        self.numeric = torch.from_numpy(np.ascontiguousarray(rows.numeric, dtype=np.float32))
        self.categorical = torch.from_numpy(np.ascontiguousarray(rows.categorical, dtype=np.int64))
        self.target = torch.from_numpy(np.array(target))  # a copy: the encoded array may be read-only

    def __len__(self) -> int:
        return len(self.target)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"numeric": self.numeric[index], "categorical": self.categorical[index], "target": self.target[index]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])


@dataclass
class TableNetworkTask:
    """The table networks' answers to the epochs loop (backend.training.epochs.EpochTask)."""

    template: object
    preprocessor: Preprocessor
    validation: pd.DataFrame   # raw rows: permutation importance shuffles their columns
    seed: int
    importance_rows: int = IMPORTANCE_ROWS   # fewer when the time budget needs it (budget.plan_budget)
    checkpoint_tokenizer: None = None

    @property
    def classifies(self) -> bool:
        return self.preprocessor.spec.task == "classification"

    def _loss(self, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.classifies:
            return F.cross_entropy(output.float(), target, reduction=reduction)
        return F.mse_loss(output[:, 0].float(), target, reduction=reduction)

    def batch_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
        output = model(batch["numeric"], batch["categorical"])        # (B, classes) or (B, 1)
        return self._loss(output, batch["target"]), len(batch["target"])

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
        outputs, targets = [], []
        for batch in loader:
            output = model(batch["numeric"].to(device), batch["categorical"].to(device)).float()
            outputs.append((output.softmax(dim=1) if self.classifies else output[:, 0]).cpu())
            targets.append(batch["target"])
        output, target = torch.cat(outputs), torch.cat(targets)
        if self.classifies:
            known = target >= 0   # -1: a class unseen in training, or no value
            loss = F.nll_loss(output[known].clamp_min(1e-12).log(), target[known]).item() if known.any() else 0.0
            return {**classification_metrics(target.numpy(), output.numpy()), "loss": loss}
        known = torch.isfinite(target)
        loss = F.mse_loss(output[known], target[known]).item() if known.any() else 0.0   # standardised units
        decode = self.preprocessor.decode_regression
        return {**regression_metrics(decode(target.numpy()), decode(output.numpy())), "loss": loss}

    def progress(self, metrics: dict) -> dict[str, float]:
        return {f"eval_{key}": value for key, value in metrics.items() if isinstance(value, float)}

    def save(self, model: nn.Module, folder: Path) -> None:
        TabularModel(template=self.template, preprocessor=self.preprocessor, model=model).save(folder)

    def saved_weights(self, output_dir: Path) -> dict[str, torch.Tensor]:
        return best_weights_file(output_dir)

    def served(self, model: nn.Module, run: EpochRun) -> dict:
        return {"predictor": TabularModel(template=self.template, preprocessor=self.preprocessor, model=model.eval())}

    def final_metrics(self, model: nn.Module, metrics: dict) -> dict:
        """Class names, per-class scores and permutation importance of the best model."""
        tabular = TabularModel(template=self.template, preprocessor=self.preprocessor, model=model.eval())
        final = dict(metrics)
        if self.classifies:
            final["labels"] = list(self.preprocessor.classes)
            final["per_class"] = per_class(final["confusion_matrix"], final["labels"])
        else:   # the Runs tab's predicted-vs-actual plot
            final["predicted_vs_actual"] = tabular.fit_points(self.validation)
        final["feature_importance"] = tabular.importances(self.validation, n_repeats=IMPORTANCE_REPEATS,
                                                          seed=self.seed, max_rows=self.importance_rows)
        model.train()
        return final


def per_class(confusion: list[list[int]], labels: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support of each class, from the confusion matrix (rows: true classes)."""
    rows = {}
    for index, label in enumerate(labels):
        hits = confusion[index][index]
        predicted = sum(row[index] for row in confusion)
        support = sum(confusion[index])
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support)}
    return rows


def setup_frames(spec: TableSpec, train: pd.DataFrame, validation: pd.DataFrame, config: TrainConfig,
                 output_dir: Path, accelerator: Accelerator) -> EpochRun:
    """Fit the preprocessing on `train`, encode both splits, build the network and loaders; prepare them."""
    started = time.monotonic()
    check_rows(spec, train, validation)
    set_seed(config.seed)  # python, numpy, torch (+cuda): weights, dropout and shuffling repeat
    preprocessor, train_rows, train_target = Preprocessor.fit_transform(train, spec)
    known = train_target >= 0 if spec.task == "classification" else np.isfinite(train_target)
    train_rows = train_rows.take(np.flatnonzero(known))
    model = build_network(config.template, preprocessor)
    rows = RowsDataset(train_rows, train_target[known])
    # The loader's own generator keeps iterating it from drawing on the global RNG (dropout's).
    train_loader = DataLoader(rows, batch_size=config.batch_size, sampler=EpochShuffle(len(rows), config.seed),
                              collate_fn=_as_is, generator=torch.Generator().manual_seed(config.seed))
    validation_rows = RowsDataset(preprocessor.transform(validation), preprocessor.encode_target(
        validation[spec.target]))
    eval_loader = DataLoader(validation_rows, batch_size=EVAL_BATCH_SIZE, collate_fn=_as_is)
    task = TableNetworkTask(config.template, preprocessor, validation, config.seed)
    run = prepare_run(config, accelerator, model, train_loader, eval_loader, task, output_dir, f"{len(rows)} rows")
    if config.time_budget_seconds:
        _share_budget(run, task, started)
    return run


def _share_budget(run: EpochRun, task: TableNetworkTask, started: float) -> None:
    """Leave time in the run's budget for the final evaluation and the permutation importance (budget.py)."""
    config = run.config
    network = run.accelerator.unwrap_model(run.model, keep_fp32_wrapper=False, keep_torch_compile=False)
    predictor = TabularModel(template=task.template, preprocessor=task.preprocessor, model=network)
    per_row = seconds_per_row(predictor.predict_output, task.validation)
    network.train()   # predict_output left it in eval mode
    plan = plan_budget(config.time_budget_seconds, per_row, len(task.validation), len(task.preprocessor.spec.inputs),
                       IMPORTANCE_REPEATS, setup_seconds=time.monotonic() - started)
    log.info("time budget %.0f s: training %.0f s, %.0f s kept for the final evaluation and the importance on "
             "%d rows (%.2f ms per row)", config.time_budget_seconds, plan.training_seconds, plan.reserved_seconds,
             plan.importance_rows, per_row * 1000)
    run.config = config.model_copy(update={"time_budget_seconds": plan.training_seconds})
    task.importance_rows = plan.importance_rows


def setup(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
          checkpoint: Path | None, settings: Settings) -> EpochRun:
    """Read the stored splits of a tabular dataset, then `setup_frames`."""
    train, validation = load_split(dataset, "train"), load_split(dataset, "validation")
    if train.empty or validation.empty:
        raise UserError(f"Dataset '{dataset.name}' needs rows in both its training and validation splits; "
                        "upload it again with a validation share above 0.")
    return setup_frames(table_spec(dataset), train, validation, config, output_dir, accelerator)


TABLE_EPOCHS = Epochs(setup)


def train_network(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
                  should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator,
                  settings: Settings | None = None) -> TrainResult:
    """Train `config.template` (mlp or ft-transformer) on a stored table through the shared core."""
    return run_strategy(TABLE_EPOCHS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                        settings)


def fit_network(template, spec: TableSpec, train: pd.DataFrame, validation: pd.DataFrame,
                settings: TabularFitSettings, on_progress: ProgressFn = lambda step, values: None,
                should_stop: Callable[[], bool] = lambda: False,
                accelerator: Accelerator | None = None) -> tuple[TabularModel, FitResult]:
    """The same strategy on data frames, outside a stored dataset: the run's files go to a temporary folder."""
    from backend.training.devices import get_accelerator

    config = TrainConfig(dataset_id=None, task=f"tabular-{spec.task}", template=template, epochs=settings.epochs,
                         batch_size=settings.batch_size, learning_rate=settings.learning_rate_for(template.kind),
                         weight_decay=settings.weight_decay_or_default(),
                         early_stopping_patience=settings.early_stopping_patience,
                         time_budget_seconds=settings.time_budget_seconds, log_every_steps=settings.log_every_steps,
                         seed=settings.seed)
    dataset = DatasetRecord(id=0, name="table", task=config.task, content_hash="", path="", text_column=None,
                            label_column=None, rows=len(train) + len(validation), train_rows=len(train),
                            validation_rows=len(validation), input_columns=list(spec.inputs),
                            target_column=spec.target)
    history, steps = [], [0]

    def record(step: int, values: dict) -> None:
        steps[0] = max(steps[0], step)
        if "eval_loss" in values:
            history.append({"step": step, **values})
        on_progress(step, values)

    strategy = Epochs(lambda config, dataset, output_dir, accelerator, checkpoint, settings:
                      setup_frames(spec, train, validation, config, output_dir, accelerator))
    accelerator = accelerator or get_accelerator()
    with tempfile.TemporaryDirectory(prefix="modelsmith-table-") as folder:
        result = run_strategy(strategy, config, dataset, Path(folder), record, should_stop, False, accelerator)
    model = result.predictor
    metrics = {key: value for key, value in result.metrics.items() if key != "timing_seconds"}
    return model, FitResult(model=model.model, metrics=metrics, best_step=result.best_step, steps=steps[0],
                            stop_reason=result.stop_reason, history=history)

