"""Space export of table models: the standalone Space (numpy, pandas, LightGBM or torch; no Modelsmith code)
gives the app's predictions for gbdt, mlp and ft-transformer, classes and numbers, and its app builds."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pandas as pd
import pytest

from backend.config import apply_overrides, default_config
from backend.data.store import IngestOptions
from tests.backend.tasks.tabular.conftest import mixed_table
from tests.backend.tasks.tabular.test_app import TINY

SPACE_MODULES = ("app", "image_model", "text_model", "table_model")


@pytest.fixture
def services(settings):
    from backend.services import build_services

    services = build_services(settings)
    yield services
    services.close()


def _train(services, path, task, target, kind):
    other_target = "amount" if target == "label" else "label"  # follows the same rule: it would leak
    dataset = services.ingest(path, IngestOptions(task=task, label_column=target, validation_fraction=0.2,
                                                  drop_columns=("noise", other_target))).dataset
    config = apply_overrides(default_config(dataset.id, kind, task), TINY[kind])
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 300)
    assert run.status == "succeeded", run.error
    return run


def _probe_rows() -> pd.DataFrame:
    """New rows with what a visitor types: strings for numbers, unknown and missing values, a bad date."""
    rows = mixed_table(rows=30, seed=5).drop(columns=["label", "amount"]).astype(object)
    rows.loc[0, "color"] = "mauve"            # unknown category
    rows.loc[1, "x"] = None                   # missing number
    rows.loc[2, "when"] = "not a date"        # unreadable date: missing
    rows.loc[3, "flag"] = "yes"               # a boolean spelled as text
    rows.loc[4, "x"] = "0.75"                 # a number as text (a form's box)
    rows["when"] = rows["when"].astype(str)   # dates as a form sends them
    return rows


def _space_predictor(space, monkeypatch):
    monkeypatch.syspath_prepend(str(space))
    for name in SPACE_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module("table_model").load_table_model(space / "model")


@pytest.mark.parametrize(("kind", "task", "target"), [
    ("gbdt", "tabular-classification", "label"),
    ("mlp", "tabular-regression", "amount"),
    ("ft-transformer", "tabular-classification", "label"),
])
@pytest.mark.slow
def test_a_table_space_predicts_like_the_app(services, tmp_path, monkeypatch, kind, task, target):
    from backend.sharing.space import export_space
    from backend.tasks.tabular.model_io import TabularModel

    path = tmp_path / "mixed.csv"
    mixed_table().to_csv(path, index=False)
    run = _train(services, path, task, target, kind)
    if task == "tabular-regression":   # the Runs tab's predicted-vs-actual plot, from the neural path too
        points = run.metrics["predicted_vs_actual"]
        assert len(points["actual"]) == len(points["predicted"]) > 0
    space = export_space(run, tmp_path / "space").path
    info = json.loads((space / "space.json").read_text(encoding="utf-8"))
    assert info["panel"] == "table" and info["family"] == kind and info["target"] == target
    requirements = (space / "requirements.txt").read_text(encoding="utf-8")
    assert "lightgbm" in requirements and "pandas" in requirements
    readme = (space / "README.md").read_text(encoding="utf-8")
    assert 'api_name="/predict"' in readme and "one row of a table" in readme

    transform, predict = _space_predictor(space, monkeypatch)
    rows = _probe_rows()
    in_app = TabularModel.load(run.output_dir).predict_output(rows)
    in_space = predict(rows)
    assert in_space.shape == in_app.shape
    np.testing.assert_allclose(in_space, in_app, rtol=1e-5, atol=1e-5)
    if task == "tabular-classification":
        assert transform.classes == ["no", "yes"]

    # The Space's page: a form with one input per column, /predict answering like the app for one row.
    app = importlib.import_module("app")
    (predict_fn,) = [fn for fn in app.demo.fns.values() if fn.api_name == "predict"]
    assert len(predict_fn.inputs) == len(transform.inputs)
    row = rows.iloc[[6]]
    answer = predict_fn.fn(*[row.iloc[0][column] for column in transform.inputs])
    expected = TabularModel.load(run.output_dir).predict_output(row)[0]
    if task == "tabular-classification":
        assert answer == pytest.approx(dict(zip(transform.classes, expected)), abs=1e-5)
    else:
        assert answer == pytest.approx(float(expected), abs=1e-5)
    # Its number boxes are text boxes (gr.Number shows and sends 0 for a blank one): typed text reads
    # as the number, and a word gets a message.
    numeric = [column for column, kind in transform.inputs.items() if kind == "numeric"]
    assert [type(block).__name__ for block in predict_fn.inputs
            if block.label in numeric] == ["Textbox"] * len(numeric) and numeric
    typed = [str(row.iloc[0][column]) if column in numeric else row.iloc[0][column] for column in transform.inputs]
    assert predict_fn.fn(*typed) == answer
    import gradio as gr
    with pytest.raises(gr.Error, match="is not a number"):
        predict_fn.fn(*["many" if column == numeric[0] else value for column, value in zip(transform.inputs, typed)])
    for name in SPACE_MODULES:
        sys.modules.pop(name, None)
