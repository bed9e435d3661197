"""gbdt's own validation scoring (boosting_validation) against LightGBM's validation set, round by round."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from backend.tasks.tabular import boosting_validation, gbdt
from backend.tasks.tabular.columns import TableSpec, default_spec, infer_schema
from backend.tasks.tabular.config import GbdtTemplate, TabularFitSettings
from backend.tasks.tabular.fitting import fit_template
from backend.tasks.tabular.preprocessing import Preprocessor
from backend.tasks.tabular.splitting import split_table

SETTINGS = TabularFitSettings(seed=0, num_threads=1)
MIXED_INPUTS = {"x": "numeric", "noise": "numeric", "color": "categorical", "flag": "boolean", "when": "datetime"}


def _encoded(frame: pd.DataFrame, spec: TableSpec, unseen_colors: bool = False):
    train, validation = split_table(frame, spec, seed=0)
    if unseen_colors:   # category codes the trees never saw in training: unknown (1) and missing (0)
        validation = validation.copy()
        validation.loc[validation.index[:15], "color"] = "purple"
        validation.loc[validation.index[15:25], "color"] = None
    preprocessor = Preprocessor.fit(train, spec)
    return (preprocessor, preprocessor.transform(train), preprocessor.encode_target(train[spec.target]),
            preprocessor.transform(validation), preprocessor.encode_target(validation[spec.target]))


def _lightgbm_reference(template: GbdtTemplate, preprocessor, train, train_target, validation, validation_target):
    """What lgb.train with LightGBM's own validation set and lgb.early_stopping records for the same fit."""
    if preprocessor.spec.task == "regression":
        train_target = preprocessor.decode_regression(train_target)
        validation_target = preprocessor.decode_regression(validation_target)
    train_set = lgb.Dataset(gbdt.gbdt_features(train), train_target,
                            categorical_feature=gbdt.categorical_columns(preprocessor))
    valid_set = train_set.create_valid(gbdt.gbdt_features(validation), validation_target)
    recorded: dict = {}
    booster = lgb.train(gbdt.booster_params(template, preprocessor, SETTINGS), train_set,
                        num_boost_round=template.num_rounds, valid_sets=[valid_set], valid_names=["validation"],
                        callbacks=[lgb.record_evaluation(recorded),
                                   lgb.early_stopping(template.early_stopping_rounds, first_metric_only=True,
                                                      verbose=False)])
    return booster.best_iteration, recorded["validation"]


@pytest.fixture
def chunk_sizes(monkeypatch) -> list[int]:
    """The rounds of each RunningValidation.add_rounds call (a chunk), in order."""
    sizes: list[int] = []
    original = boosting_validation.RunningValidation.add_rounds
    monkeypatch.setattr(boosting_validation.RunningValidation, "add_rounds",
                        lambda self, booster, rounds: sizes.append(rounds) or original(self, booster, rounds))
    return sizes


@pytest.mark.parametrize("table", ["breast_cancer", "wine", "diabetes", "mixed"])
def test_every_round_scores_as_lightgbms_validation_set(table, request):
    """Binary, multiclass, regression, and a table with a category and dates whose validation rows
    hold categories unseen in training (LightGBM bins those rows; we walk their raw codes): the same
    values every round, the same best round, and no round built that LightGBM's early stopping
    would not build."""
    frame = request.getfixturevalue(table)
    spec = (TableSpec(target="label", task="classification", inputs=MIXED_INPUTS) if table == "mixed"
            else default_spec(infer_schema(frame)))
    encoded = _encoded(frame, spec, unseen_colors=table == "mixed")
    template = GbdtTemplate(num_rounds=300, min_rows_per_leaf=10, early_stopping_rounds=10)
    result = gbdt.fit_gbdt(template, *encoded, SETTINGS)
    best, expected = _lightgbm_reference(template, *encoded)
    metric_names = list(expected)
    assert len(metric_names) == 2 and result.stop_reason == "early_stopping"
    assert result.best_step == best
    assert result.steps == len(expected[metric_names[0]]) == best + template.early_stopping_rounds
    for name in metric_names:
        ours = [entry[f"val_{name}"] for entry in result.history]
        np.testing.assert_allclose(ours, expected[name], rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("how", ["validation_chunk_rounds", "MAX_CHUNK_CELLS"])
def test_scores_do_not_depend_on_how_rounds_are_chunked(how, breast_cancer, monkeypatch, chunk_sizes):
    """One round per chunk (asked for, as the Estimate does, or a table too big for more) gives the
    very same fit."""
    spec = default_spec(infer_schema(breast_cancer))
    encoded = _encoded(breast_cancer, spec)
    template = GbdtTemplate(num_rounds=60, min_rows_per_leaf=5, early_stopping_rounds=0)
    chunked = gbdt.fit_gbdt(template, *encoded, SETTINGS)
    assert len(chunk_sizes) < 10   # the usual chunks: several rounds each
    chunk_sizes.clear()
    settings = SETTINGS
    if how == "MAX_CHUNK_CELLS":
        monkeypatch.setattr(boosting_validation, "MAX_CHUNK_CELLS", 1)
    else:
        settings = SETTINGS.model_copy(update={"validation_chunk_rounds": 1})
    one_by_one = gbdt.fit_gbdt(template, *encoded, settings)
    assert chunk_sizes == [1] * 60
    assert one_by_one.history == chunked.history and len(chunked.history) == 60
    assert one_by_one.metrics == chunked.metrics


def test_slow_rounds_are_reported_one_by_one(breast_cancer, monkeypatch, chunk_sizes):
    """A chunk ends after CHUNK_SECONDS: with a zero limit every round is scored and reported at once."""
    spec = default_spec(infer_schema(breast_cancer))
    encoded = _encoded(breast_cancer, spec)
    monkeypatch.setattr(gbdt, "CHUNK_SECONDS", 0.0)
    result = gbdt.fit_gbdt(GbdtTemplate(num_rounds=15, min_rows_per_leaf=5), *encoded, SETTINGS)
    assert chunk_sizes == [1] * 15 and [entry["round"] for entry in result.history] == list(range(1, 16))


def test_a_booster_that_runs_out_of_splits_ends_completed(breast_cancer):
    """LightGBM stops finding splits when the training rows are fitted perfectly: the fit ends there
    (it used to spin through the remaining rounds), keeping every tree it built."""
    spec = default_spec(infer_schema(breast_cancer))
    template = GbdtTemplate(num_rounds=100_000, early_stopping_rounds=0, min_rows_per_leaf=1, num_leaves=4)
    train, validation = split_table(breast_cancer, spec, seed=0)
    model, result = fit_template(template, spec, train, validation, SETTINGS)
    assert result.stop_reason == "completed" and 10 < result.steps < 100_000
    assert model.model.num_trees() == result.steps == result.best_step


def test_a_table_nothing_can_split_gives_a_constant_model(mixed):
    """More rows per leaf than the table has: LightGBM keeps one constant tree (the base rate)."""
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    train, validation = split_table(mixed, spec, seed=0)
    model, result = fit_template(GbdtTemplate(min_rows_per_leaf=10_000), spec, train, validation, SETTINGS)
    assert result.steps == result.best_step == 1 and model.model.num_trees() == 1
    output = model.predict_output(validation)
    assert np.allclose(output, output[0])          # the same probabilities for every row
    share_yes = (train["label"] == "yes").mean()
    assert output[0][model.preprocessor.classes.index("yes")] == pytest.approx(share_yes, abs=1e-6)
    assert result.metrics["accuracy"] == pytest.approx(max(share_yes, 1 - share_yes), abs=0.1)


def test_a_time_budget_keeps_the_best_round_so_far(mixed, monkeypatch):
    """Each clock reading advances a second: a 100 s budget ends the fit after some rounds, and the
    model kept is the round with the lowest validation loss. A fifth of the labels are flipped, so
    the big steps below overfit and the loss rises again."""
    spec = TableSpec(target="label", task="classification", inputs=MIXED_INPUTS)
    noisy = mixed.assign(label=np.where(np.random.default_rng(0).random(len(mixed)) < 0.2,
                                        np.where(mixed["label"] == "yes", "no", "yes"), mixed["label"]))
    clock = iter(range(10**6))
    monkeypatch.setattr(gbdt.time, "monotonic", lambda: float(next(clock)))
    template = GbdtTemplate(num_rounds=1000, min_rows_per_leaf=1, num_leaves=64, early_stopping_rounds=1000)
    settings = SETTINGS.model_copy(update={"time_budget_seconds": 100, "learning_rate": 0.5})
    result = gbdt.fit_gbdt(template, *_encoded(noisy, spec), settings)
    losses = [entry["val_binary_logloss"] for entry in result.history]
    assert result.stop_reason == "time_budget" and len(losses) < 1000
    assert result.best_step == int(np.argmin(losses)) + 1 < len(losses)   # an earlier round than the last
    assert result.model.num_trees() == result.best_step


def test_no_tree_at_all_is_a_clear_error(breast_cancer, monkeypatch):
    """Should LightGBM add no tree (it normally adds a constant one), the fit says so instead of
    saving an empty model."""
    from backend.errors import UserError

    spec = default_spec(infer_schema(breast_cancer))
    monkeypatch.setattr(lgb.Booster, "update", lambda self, *args, **kwargs: True)
    with pytest.raises(UserError, match="built no tree"):
        gbdt.fit_gbdt(GbdtTemplate(), *_encoded(breast_cancer, spec), SETTINGS)
