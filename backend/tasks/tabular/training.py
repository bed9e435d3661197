"""A tabular run inside the app: the job runner's `Task.train` for the three tabular templates.

mlp and ft-transformer train on the shared core's epochs strategy (neural_training.py: Accelerate
places them on the run's device, a checkpoint every epoch, Stop and resume as every run has them).
gbdt is LightGBM, not an Accelerate loop: this module reads the stored splits, rebuilds the
dataset's TableSpec, maps the run's TrainConfig onto a TabularFitSettings, fits and saves the model
folder with its metrics, permutation importances and model card. It keeps no checkpoint: a stopped
or interrupted gbdt run starts again from the beginning when resumed (the log says so). Progress
goes out under the keys every run uses (`train_loss`, `eval_loss`, `eval_accuracy`, `progress`,
...), one step per optimizer step for the neural templates and one per boosting round for gbdt.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from backend.data.store import load_split
from backend.errors import UserError
from backend.tasks.tabular.config import TabularFitSettings
from backend.tasks.tabular.fitting import fit_template
from backend.tasks.tabular.model_io import TabularModel
from backend.tasks.tabular.prepare import table_spec
from backend.training.phases import METRICS_KEY as TIMING_KEY
from backend.training.phases import PhaseTimes

log = logging.getLogger(__name__)

# LightGBM splits each round's work across OpenMP threads; on a small table a round is too little
# work to share, and on a busy machine the waiting threads make it many times slower (a 500-row
# table: 0.3 s on one thread, 5.6 s on the default two, under load). Bigger tables use every core.
SINGLE_THREAD_ROWS = 50_000
# LightGBM's names of the validation values -> the progress keys every run uses.
_GBDT_KEYS = {"val_binary_logloss": "eval_loss", "val_multi_logloss": "eval_loss", "val_rmse": "eval_rmse",
              "val_l1": "eval_mae"}
_ERROR_KEYS = ("val_binary_error", "val_multi_error")


def fit_settings(config, train_rows: int = 0) -> TabularFitSettings:
    """The TrainConfig fields a tabular fit reads (and LightGBM's thread count for this many rows)."""
    return TabularFitSettings(epochs=config.epochs, batch_size=config.batch_size,
                              num_threads=1 if train_rows < SINGLE_THREAD_ROWS else 0,
                              early_stopping_patience=config.early_stopping_patience,
                              time_budget_seconds=config.time_budget_seconds,
                              log_every_steps=config.log_every_steps, seed=config.seed,
                              learning_rate=config.learning_rate, weight_decay=config.weight_decay)


def progress_values(values: dict, step: int, total_steps: int) -> dict[str, float]:
    """A fit's progress values under the app's keys (val_x -> eval_x; gbdt's error -> accuracy)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if key in _GBDT_KEYS:
            out[_GBDT_KEYS[key]] = value
        elif key in _ERROR_KEYS:
            out["eval_accuracy"] = 1.0 - value
        elif key.startswith("val_"):
            out["eval_" + key.removeprefix("val_")] = value
        else:
            out[key] = value
    out["progress"] = min(1.0, step / max(total_steps, 1))
    return out


def train_table(config, dataset, output_dir: Path, on_progress: Callable[[int, dict], None],
                should_stop: Callable[[], bool], resume: bool, accelerator=None, settings=None):
    """Train `config.template` on a stored table; the best model and its card land in `output_dir`."""
    # The training core (Accelerate) is loaded when a run starts, not when a model is loaded to predict.
    from backend.tasks.tabular.neural_training import IMPORTANCE_REPEATS, per_class, train_network

    if config.template.kind != "gbdt":
        return train_network(config, dataset, output_dir, on_progress, should_stop, resume, accelerator, settings)
    from backend.sharing.model_card import write_model_card
    from backend.training.core import TrainResult   # the shared result type (loads torch, as training does)

    output_dir = Path(output_dir)
    phases = PhaseTimes()   # where the run's time went, shown in the Runs tab like every run's
    with phases.measure("setup"):
        spec = table_spec(dataset)
        train, validation = load_split(dataset, "train"), load_split(dataset, "validation")
        if train.empty or validation.empty:
            raise UserError(f"Dataset '{dataset.name}' needs rows in both its training and validation splits; "
                            "upload it again with a validation share above 0.")
        if resume:
            log.info("gbdt runs keep no checkpoint: run in %s starts again from the beginning", output_dir)
        (output_dir / "run_config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
        settings = fit_settings(config, len(train))
        template = config.template
        total = template.num_rounds
    with phases.measure("steps"):   # preprocessing, the boosting rounds and their validation
        model, result = fit_template(template, spec, train, validation, settings,
                                     on_progress=lambda step, values: on_progress(step, progress_values(
                                         values, step, total)),
                                     should_stop=should_stop)
    metrics = dict(result.metrics)
    with phases.measure("evaluation"):
        if spec.task == "classification":
            metrics["labels"] = list(model.preprocessor.classes)
            metrics["per_class"] = per_class(metrics["confusion_matrix"], metrics["labels"])
        else:   # the Runs tab's predicted-vs-actual plot
            metrics["predicted_vs_actual"] = model.fit_points(validation)
        metrics["feature_importance"] = model.importances(validation, n_repeats=IMPORTANCE_REPEATS,
                                                          seed=config.seed)
        metrics["best_step"] = result.best_step
    with phases.measure("saving"):
        _save(model, output_dir)
    with phases.measure("finishing"):
        write_model_card(output_dir, config, dataset, metrics, best_step=result.best_step,
                         stop_reason=result.stop_reason)
    metrics[TIMING_KEY] = phases.as_metrics()
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    on_progress(result.steps, {"progress": 1.0})
    return TrainResult(metrics=metrics, best_step=result.best_step, output_dir=output_dir,
                       stop_reason=result.stop_reason, predictor=model)


def _save(model: TabularModel, output_dir: Path) -> None:
    """Write the model files into a staging folder, then move each into place (never a half-written file)."""
    staging = output_dir / ".best-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    for path in sorted(staging.iterdir()):
        path.replace(output_dir / path.name)
    shutil.rmtree(staging, ignore_errors=True)


def load_model(folder) -> TabularModel:
    """A trained tabular model folder (template.json, preprocessing.json, weights or booster)."""
    return TabularModel.load(folder)
