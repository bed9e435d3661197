"""Each template learns on tiny tables (beats a trivial baseline), saves without pickle and reloads equal."""

import numpy as np
import pandas as pd
import pytest

from backend.errors import Cancelled
from backend.tasks.tabular.columns import TableSpec, default_spec, infer_schema
from backend.tasks.tabular.config import FtTransformerTemplate, GbdtTemplate, MlpTemplate, TabularFitSettings
from backend.tasks.tabular.fitting import fit_template
from backend.tasks.tabular.metrics import permutation_importances
from backend.tasks.tabular.model_io import TabularModel
from backend.tasks.tabular.splitting import split_table

TINY = {
    "mlp": MlpTemplate(hidden_size=32, num_layers=2, dropout=0.0),
    "ft-transformer": FtTransformerTemplate(token_size=16, num_heads=2, num_layers=1,
                                            attention_dropout=0.0, ffn_dropout=0.0),
    "gbdt": GbdtTemplate(num_rounds=100, min_rows_per_leaf=5),
}
SETTINGS = TabularFitSettings(epochs=30, batch_size=32, early_stopping_patience=6, seed=0, num_threads=1)


def settings_for(kind: str) -> TabularFitSettings:
    """SETTINGS, with a higher learning rate for the tiny neural templates (gbdt keeps its usual 0.1)."""
    return SETTINGS if kind == "gbdt" else SETTINGS.model_copy(update={"learning_rate": 3e-3})
MIXED_INPUTS = {"x": "numeric", "noise": "numeric", "color": "categorical", "flag": "boolean", "when": "datetime"}


def _fit(kind, frame, spec, **settings):
    train, validation = split_table(frame, spec, seed=0)
    model, result = fit_template(TINY[kind], spec, train, validation, settings_for(kind).model_copy(update=settings))
    return model, result, train, validation


@pytest.mark.parametrize("kind", TINY)
@pytest.mark.slow
def test_classification_on_breast_cancer_beats_the_majority_class(kind, breast_cancer):
    spec = default_spec(infer_schema(breast_cancer))
    assert spec.target == "target" and spec.task == "classification"
    model, result, train, validation = _fit(kind, breast_cancer, spec)
    majority = validation["target"].value_counts(normalize=True).max()
    assert majority < 0.65
    assert result.metrics["accuracy"] > 0.9
    assert result.metrics["roc_auc"] > 0.95
    predicted = model.predict(validation)
    assert np.mean(np.array(predicted) == validation["target"].to_numpy()) == pytest.approx(result.metrics["accuracy"])


@pytest.mark.parametrize("kind", TINY)
@pytest.mark.slow
def test_classification_with_categories_and_dates(kind, mixed, tmp_path):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    progress = []
    train, validation = split_table(mixed, spec, seed=0)
    model, result = fit_template(TINY[kind], spec, train, validation, settings_for(kind),
                                 on_progress=lambda step, values: progress.append((step, values)))
    majority = validation["label"].value_counts(normalize=True).max()
    assert result.metrics["accuracy"] >= majority + 0.2     # the rule needs both x and color
    # gbdt reports LightGBM's validation names per round; the networks the app's keys per epoch.
    assert any({"val_binary_logloss", "eval_accuracy"} & set(values) for _, values in progress)
    assert [step for step, _ in progress] == sorted(step for step, _ in progress)
    # saved -> loaded -> the same predictions, without pickle
    model.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == sorted(["template.json", "preprocessing.json",
                            "model.txt" if kind == "gbdt" else "model.safetensors"])
    loaded = TabularModel.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_output(validation), model.predict_output(validation), rtol=1e-6)
    # unknown categories, missing values and absent columns at predict time: an answer, no crash
    odd = pd.DataFrame({"x": [None, 0.9, "n/a"], "color": ["ultraviolet", None, "red"], "flag": [None, "maybe", True],
                        "when": ["yesterday", None, "2024-02-03"]})
    assert set(loaded.predict(odd)) <= {"yes", "no"}
    assert len(loaded.predict(pd.DataFrame({"x": [0.1, 0.95]}))) == 2
    assert loaded.predict(validation.head(0)) == [] and loaded.predict_records([]) == []


@pytest.mark.parametrize("kind", TINY)
@pytest.mark.slow
def test_regression_beats_predicting_the_mean(kind, mixed, diabetes, tmp_path):
    spec = TableSpec(target="amount", task="regression", inputs=MIXED_INPUTS)
    model, result, train, validation = _fit(kind, mixed, spec)
    assert result.metrics["r2"] > 0.8
    model.save(tmp_path / "m")
    reloaded = TabularModel.load(tmp_path / "m").predict(validation)
    np.testing.assert_allclose(reloaded, model.predict(validation), rtol=1e-5)
    spec = default_spec(infer_schema(diabetes))
    assert spec.task == "regression"
    model, result, train, validation = _fit(kind, diabetes, spec)
    baseline_rmse = np.sqrt(np.mean((validation["target"] - train["target"].mean()) ** 2))
    assert result.metrics["rmse"] < 0.9 * baseline_rmse


def test_wine_has_three_classes(wine):
    spec = default_spec(infer_schema(wine))
    model, result, *_ = _fit("gbdt", wine, spec)
    assert model.preprocessor.classes == ["0", "1", "2"]
    assert result.metrics["accuracy"] > 0.85 and "roc_auc" not in result.metrics
    assert np.array(result.metrics["confusion_matrix"]).shape == (3, 3)


@pytest.mark.parametrize("kind", TINY)
def test_stop_request_raises_cancelled(kind, mixed):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    train, validation = split_table(mixed, spec, seed=0)
    calls = []
    with pytest.raises(Cancelled):
        fit_template(TINY[kind], spec, train, validation, settings_for(kind),
                     should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert len(calls) == 3


def test_time_budget_keeps_the_best_model_so_far(mixed):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    model, result, *_ = _fit("mlp", mixed, spec, time_budget_seconds=1e-9)
    assert result.stop_reason == "time_budget" and result.best_step == 1 and len(result.history) == 1


@pytest.mark.parametrize("kind", TINY)
@pytest.mark.slow
def test_permutation_importance_ranks_the_columns_of_the_rule(kind, mixed):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    model, result, train, validation = _fit(kind, mixed, spec)
    importances = model.importances(validation, n_repeats=3)
    assert set(list(importances)[:2]) == {"x", "color"}
    assert importances["x"]["mean"] > 0.1 and abs(importances["noise"]["mean"]) < 0.05


@pytest.mark.slow
def test_permutation_importance_for_regression_and_a_neural_model(mixed):
    spec = TableSpec(target="amount", task="regression", inputs=MIXED_INPUTS)
    model, result, train, validation = _fit("mlp", mixed, spec)
    importances = permutation_importances(model.predict_output, validation, validation["amount"].to_numpy(),
                                          "regression", list(spec.inputs), n_repeats=3)
    assert list(importances)[0] == "x"
    assert importances["color"]["mean"] > importances["noise"]["mean"]


def test_gbdt_time_budget_stops_after_the_first_round(mixed):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    model, result, *_ = _fit("gbdt", mixed, spec, time_budget_seconds=1e-9)
    assert result.stop_reason == "time_budget" and result.steps == 1 and result.best_step == 1
    assert model.model.num_trees() == 1


def test_binary_metrics_include_a_precision_recall_curve(breast_cancer):
    spec = default_spec(infer_schema(breast_cancer))
    _, result, *_ = _fit("gbdt", breast_cancer, spec)
    curve = result.metrics["pr_curve"]
    assert 2 <= len(curve["precision"]) == len(curve["recall"]) <= 101
    assert curve["recall"][0] == 1.0 and curve["recall"][-1] == 0.0     # sklearn's order: recall falls


def test_fit_refuses_absent_columns_and_an_empty_target_clearly(mixed):
    from backend.errors import UserError
    spec = TableSpec(target="label", task="classification", inputs={**MIXED_INPUTS, "height": "numeric"})
    with pytest.raises(UserError, match="lack the columns height"):
        fit_template(TINY["gbdt"], spec, mixed, mixed)
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    with pytest.raises(UserError, match="No validation row has a 'label' value"):
        fit_template(TINY["gbdt"], spec, mixed, mixed.assign(label=None))


def test_predict_records_from_json_rows(mixed):
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    model, *_ = _fit("gbdt", mixed, spec)
    answers = model.predict_records([{"x": 0.95, "color": "blue", "flag": True, "when": "2024-03-01 10:00"},
                                     {"x": "0.05", "color": "red"},          # a number as text, keys absent
                                     {"x": 0.05, "color": "green", "unexpected": 1}])
    assert [a["prediction"] for a in answers] == ["yes", "yes", "no"]
    assert all(sum(a["probabilities"].values()) == pytest.approx(1) for a in answers)
    x = next(f for f in model.preprocessor.numeric if f.name == "x")
    assert 0 <= x.minimum < 0.05 and 0.95 < x.maximum <= 1      # the observed range, for a form
    from backend.errors import UserError
    with pytest.raises(UserError, match="list of objects"):
        model.predict_records({"x": 1})


def test_permutation_importance_reads_a_bounded_sample_of_the_rows(mixed, monkeypatch):
    from backend.tasks.tabular import model_io

    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    model, result, train, validation = _fit("gbdt", mixed, spec)
    monkeypatch.setattr(model_io, "IMPORTANCE_ROWS", 40)
    seen, predict = [], model.predict_output
    monkeypatch.setattr(model, "predict_output", lambda rows: seen.append(len(rows)) or predict(rows))
    assert len(validation) > 40
    importances = model.importances(validation, n_repeats=2)
    assert seen and max(seen) == 40  # every shuffle predicts the sample, not the whole split
    assert list(importances)[0] in {"x", "color"}  # still ranks a rule column first


@pytest.mark.parametrize("table, rounds", [("breast_cancer", 400), ("wine", 400), ("diabetes", 400),
                                           ("breast_cancer", 7)])
def test_gbdt_final_metrics_are_those_of_the_kept_trees(table, rounds, request):
    """The metrics come from LightGBM's validation scores kept while training (no second prediction
    pass): they must equal the saved model's own predictions on the validation rows, whether the
    best round is before the last (early stopping) or is the last (all rounds run)."""
    from backend.tasks.tabular.metrics import classification_metrics, regression_metrics

    frame = request.getfixturevalue(table)
    spec = default_spec(infer_schema(frame))
    train, validation = split_table(frame, spec, seed=0)
    template = GbdtTemplate(num_rounds=rounds, min_rows_per_leaf=5, early_stopping_rounds=5)
    model, result = fit_template(template, spec, train, validation, SETTINGS)
    output = model.predict_output(validation)
    if spec.task == "classification":
        expected = classification_metrics(model.preprocessor.encode_target(validation[spec.target]), output)
    else:
        expected = regression_metrics(validation[spec.target].to_numpy(dtype=float), output)
    assert result.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert result.metrics[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key
    assert model.model.num_trees() == result.best_step * (3 if table == "wine" else 1)
    # Both paths of ValidationScores.of_round: an earlier best round, and the last round.
    assert (result.best_step < result.steps) if rounds == 400 else (result.best_step == result.steps == rounds)
