"""One entry point for every tabular template: fit preprocessing on the training split, then the model."""

from __future__ import annotations

from typing import Callable

import pandas as pd

from backend.errors import UserError
from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.config import AnyTabularTemplate, TabularFitSettings
from backend.tasks.tabular.gbdt import fit_gbdt
from backend.tasks.tabular.model_io import TabularModel
from backend.tasks.tabular.neural_fit import FitResult, ProgressFn, fit_network
from backend.tasks.tabular.preprocessing import Preprocessor


def fit_template(template: AnyTabularTemplate, spec: TableSpec, train: pd.DataFrame, validation: pd.DataFrame,
                 settings: TabularFitSettings | None = None, on_progress: ProgressFn = lambda step, values: None,
                 should_stop: Callable[[], bool] = lambda: False) -> tuple[TabularModel, FitResult]:
    """Train `template` on `train` (preprocessing fitted on it alone), pick the best model on `validation`."""
    settings = settings or TabularFitSettings()
    for name, rows in (("training", train), ("validation", validation)):
        absent = [c for c in [spec.target, *spec.inputs] if c not in rows.columns]
        if absent:
            raise UserError(f"The {name} rows lack the columns {', '.join(absent)}; "
                            "pick the target and inputs among the table's columns.")
        if rows[spec.target].notna().sum() == 0:
            raise UserError(f"No {name} row has a {spec.target!r} value; fill in the target column.")
    preprocessor = Preprocessor.fit(train, spec)
    arguments = (template, preprocessor, preprocessor.transform(train), preprocessor.encode_target(train[spec.target]),
                 preprocessor.transform(validation), preprocessor.encode_target(validation[spec.target]), settings)
    fit = fit_gbdt if template.kind == "gbdt" else fit_network
    result = fit(*arguments, on_progress=on_progress, should_stop=should_stop)
    return TabularModel(template=template, preprocessor=preprocessor, model=result.model), result
