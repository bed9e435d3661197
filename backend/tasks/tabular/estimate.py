"""The Estimate of a table run: a few boosting rounds (gbdt) or optimizer steps (mlp, ft-transformer)
timed on the real training split, through the same fit the run uses, then extrapolated to the run.

gbdt: the run's own fit with `num_rounds` cut to TIMED_ROUNDS (early stopping off), scoring the
validation rows round by round (a run scores a few rounds at once, a little faster), so the gaps
between reports are the time per round, validation scoring included. The time before the first
report (less one round) is the set-up: preprocessing and LightGBM's binning of the rows. The whole
run is set-up + rounds x time per round; early stopping may end it sooner. Memory is arithmetic:
the rows as float64 features plus LightGBM's one-byte bins.

mlp / ft-transformer: the run's own fit, reporting every step, stopped after TIMED_STEPS + 1 steps
(the first pays one-off costs and is left out). Memory: weights, gradients and AdamW's two moments.
"""

from __future__ import annotations

import math
import os
import statistics
import time

from backend.data.store import load_split
from backend.errors import Cancelled, UserError
from backend.tasks.tabular.config import TabularFitSettings
from backend.tasks.tabular.fitting import fit_template
from backend.tasks.tabular.prepare import table_spec
from backend.training.estimate import BYTES_PER_VALUE, Estimate

TIMED_ROUNDS = 12   # boosting rounds timed (the first one's set-up is measured apart)
TIMED_STEPS = 5     # optimizer steps timed after the first
LIGHTGBM_BIN_BYTES = 1  # LightGBM bins each feature value into one byte (max_bin 255)


def estimate_table(config, dataset) -> Estimate:
    """Time per round / step and the whole run's time of `config` on `dataset`, measured here."""
    from backend.tasks.tabular.training import fit_settings

    spec = table_spec(dataset)
    train, validation = load_split(dataset, "train"), load_split(dataset, "validation")
    if train.empty or validation.empty:
        raise UserError(f"Dataset '{dataset.name}' needs rows in both its training and validation splits; "
                        "upload it again with a validation share above 0.")
    # gbdt scores each round alone (validation_chunk_rounds=1), so the gaps between reports are rounds.
    settings = fit_settings(config, len(train)).model_copy(update={"log_every_steps": 1, "time_budget_seconds": 0,
                                                                   "validation_chunk_rounds": 1})
    if config.template.kind == "gbdt":
        return _estimate_gbdt(config, spec, train, validation, settings)
    return _estimate_network(config, spec, train, validation, settings, dataset.name)


def _load() -> tuple[float | None, int]:
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except OSError:
        return None, os.cpu_count() or 1


def _timed_fit(template, spec, train, validation, settings: TabularFitSettings, counts, stop_after: int | None):
    """Run the fit; the perf_counter time of each report `counts(values)` accepts, and the start time."""
    marks: list[float] = []

    def on_progress(step: int, values: dict) -> None:
        if counts(values):
            marks.append(time.perf_counter())

    started = time.perf_counter()
    try:
        fit_template(template, spec, train, validation, settings, on_progress=on_progress,
                     should_stop=lambda: stop_after is not None and len(marks) > stop_after)
    except Cancelled:  # the steps we wanted are timed: the rest of the run is not needed
        pass
    return started, marks


def _estimate_gbdt(config, spec, train, validation, settings: TabularFitSettings) -> Estimate:
    template = config.template
    rounds = min(TIMED_ROUNDS, template.num_rounds)
    timed = template.model_copy(update={"num_rounds": rounds, "early_stopping_rounds": 0})
    started, marks = _timed_fit(timed, spec, train, validation, settings, counts=lambda values: True,
                                stop_after=None)
    gaps = [b - a for a, b in zip(marks, marks[1:])] or [marks[0] - started]
    per_round = statistics.median(gaps)
    setup = max(0.0, marks[0] - started - per_round)
    features = len(spec.inputs) + sum(1 for kind in spec.inputs.values() if kind == "datetime") * 3  # date -> 4 parts
    values = (len(train) + len(validation)) * features
    memory = values * 8 + values * LIGHTGBM_BIN_BYTES
    load, cpus = _load()
    return Estimate(parameters=0, trainable_parameters=0, weights_bytes=memory, training_state_bytes=0,
                    activation_bytes=0, memory_bytes=memory, measured_peak=False, seconds_per_step=per_round,
                    steps_per_epoch=template.num_rounds, seconds_per_epoch=per_round * template.num_rounds,
                    total_steps=template.num_rounds, seconds_total=setup + per_round * template.num_rounds,
                    device="cpu", seconds_per_step_low=min(gaps), seconds_per_step_high=max(gaps),
                    load_average=load, cpu_count=cpus, step_name="boosting round", timed_steps=len(gaps),
                    setup_seconds=setup,
                    memory_note="the rows as float64 features plus LightGBM's one-byte bins of them")


def _estimate_network(config, spec, train, validation, settings: TabularFitSettings, name: str) -> Estimate:
    from backend.tasks.tabular.networks import build_network
    from backend.tasks.tabular.preprocessing import Preprocessor

    started, marks = _timed_fit(config.template, spec, train, validation, settings,
                                counts=lambda values: "train_loss" in values, stop_after=TIMED_STEPS)
    if len(marks) < 2:
        raise UserError(f"Dataset '{name}' has too few training rows to time two steps; "
                        "lower the batch size or add rows.")
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    per_step = statistics.median(gaps)
    setup = max(0.0, marks[0] - started - per_step)
    network = build_network(config.template, Preprocessor.fit(train, spec))
    parameters = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    load, cpus = _load()
    return Estimate(parameters=parameters, trainable_parameters=trainable,
                    weights_bytes=parameters * BYTES_PER_VALUE, training_state_bytes=trainable * BYTES_PER_VALUE * 3,
                    activation_bytes=0, memory_bytes=(parameters + 3 * trainable) * BYTES_PER_VALUE,
                    measured_peak=False, seconds_per_step=per_step, steps_per_epoch=steps_per_epoch,
                    seconds_per_epoch=per_step * steps_per_epoch, total_steps=total,
                    seconds_total=setup + per_step * total, device="cpu", seconds_per_step_low=min(gaps),
                    seconds_per_step_high=max(gaps), load_average=load, cpu_count=cpus, timed_steps=len(gaps),
                    setup_seconds=setup,
                    memory_note="weights + gradients and AdamW's two moments; a batch of rows adds little")

