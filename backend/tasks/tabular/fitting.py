"""One entry point for every tabular template on data frames (the template tests, bench/bench_tabular.py).

The neural templates train on the shared core's epochs strategy exactly as a run in the app does
(neural_training.fit_network); gbdt fits its preprocessing on the training split, then LightGBM.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.config import AnyTabularTemplate, TabularFitSettings
from backend.tasks.tabular.gbdt import fit_gbdt
from backend.tasks.tabular.model_io import TabularModel
from backend.tasks.tabular.networks import FitResult, ProgressFn
from backend.tasks.tabular.preprocessing import Preprocessor
from backend.tasks.tabular.validation import check_rows


def fit_template(template: AnyTabularTemplate, spec: TableSpec, train: pd.DataFrame, validation: pd.DataFrame,
                 settings: TabularFitSettings | None = None, on_progress: ProgressFn = lambda step, values: None,
                 should_stop: Callable[[], bool] = lambda: False) -> tuple[TabularModel, FitResult]:
    """Train `template` on `train` (preprocessing fitted on it alone), pick the best model on `validation`."""
    settings = settings or TabularFitSettings()
    check_rows(spec, train, validation)
    if template.kind != "gbdt":
        from backend.tasks.tabular.neural_training import fit_network  # loads the training core (torch, Accelerate)

        return fit_network(template, spec, train, validation, settings, on_progress, should_stop)
    preprocessor, train_rows, train_target = Preprocessor.fit_transform(train, spec)
    result = fit_gbdt(template, preprocessor, train_rows, train_target, preprocessor.transform(validation),
                      preprocessor.encode_target(validation[spec.target]), settings,
                      on_progress=on_progress, should_stop=should_stop)
    return TabularModel(template=template, preprocessor=preprocessor, model=result.model), result
