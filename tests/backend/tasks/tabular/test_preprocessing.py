"""Preprocessing: fitted on training rows only, saved as JSON, identical after loading, never crashes."""

import json

import numpy as np
import pandas as pd
import pytest

from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.preprocessing import MISSING_CODE, UNKNOWN_CODE, Preprocessor

SPEC = TableSpec(target="label", task="classification",
                 inputs={"x": "numeric", "color": "categorical", "flag": "boolean", "when": "datetime"})


def test_statistics_come_from_the_training_rows_only(mixed):
    train, later = mixed.head(300), mixed.tail(100).assign(color="purple", x=100.0)
    preprocessor = Preprocessor.fit(train, SPEC)
    x = next(f for f in preprocessor.numeric if f.name == "x")
    assert x.mean == pytest.approx(train["x"].mean())
    assert x.std == pytest.approx(train["x"].std(ddof=0))
    color = preprocessor.categorical[0]
    assert color.values == ["blue", "green", "red"]
    encoded = preprocessor.transform(later)
    assert (encoded.categorical[:, 0] == UNKNOWN_CODE).all()        # purple was never seen in training
    assert preprocessor.numeric_names[:5] == ["x", "when.year", "when.month", "when.day_of_week", "when.hour"]


def test_json_round_trip_gives_identical_transforms(mixed, tmp_path):
    preprocessor = Preprocessor.fit(mixed, SPEC)
    preprocessor.save(tmp_path / "preprocessing.json")
    text = (tmp_path / "preprocessing.json").read_text()
    json.loads(text)   # plain JSON, no pickle
    loaded = Preprocessor.load(tmp_path / "preprocessing.json")
    assert loaded == preprocessor
    a, b = preprocessor.transform(mixed), loaded.transform(mixed)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)
    np.testing.assert_array_equal(preprocessor.encode_target(mixed["label"]), loaded.encode_target(mixed["label"]))


def test_missing_values_unknown_categories_and_absent_columns_never_raise(mixed):
    train = mixed.copy()
    train.loc[:9, "x"] = np.nan             # missing in training -> a missing indicator
    preprocessor = Preprocessor.fit(train, SPEC)
    assert "x.missing" in preprocessor.numeric_names
    new_rows = pd.DataFrame({"x": [None, "oops", 0.5], "color": [None, "ultraviolet", "red"],
                             "flag": ["yes", None, "maybe"], "when": ["not a date", None, "2024-05-01 13:00"]})
    encoded = preprocessor.transform(new_rows)
    names = preprocessor.numeric_names
    assert encoded.numeric[:2, names.index("x")].tolist() == [0.0, 0.0]           # the mean, standardised
    assert encoded.numeric[:, names.index("x.missing")].tolist() == [1.0, 1.0, 0.0]
    assert encoded.categorical[:, 0].tolist() == [MISSING_CODE, UNKNOWN_CODE, 2 + 2]   # red is third
    assert encoded.categorical[0, 1] != UNKNOWN_CODE and encoded.categorical[2, 1] == UNKNOWN_CODE
    assert np.isfinite(encoded.numeric).all()
    absent = preprocessor.transform(pd.DataFrame({"x": [0.1]}))                    # other columns absent
    assert absent.categorical.tolist() == [[MISSING_CODE, MISSING_CODE]]


def test_regression_target_is_standardised_and_decoded(mixed):
    spec = TableSpec(target="amount", task="regression", inputs={"x": "numeric"})
    preprocessor = Preprocessor.fit(mixed, spec)
    encoded = preprocessor.encode_target(mixed["amount"])
    assert encoded.mean() == pytest.approx(0, abs=1e-5)
    np.testing.assert_allclose(preprocessor.decode_regression(encoded), mixed["amount"], atol=1e-5)  # float32


@pytest.mark.parametrize("task, target", [("classification", "label"), ("regression", "amount")])
def test_fit_transform_equals_fit_then_transform(mixed, task, target):
    """fit_transform shares one read of each column between fitting and encoding: same result as apart,
    a date column and a missing target value included."""
    frame = mixed.copy()
    frame.loc[frame.index[:5], "x"] = None
    frame.loc[frame.index[5:8], target] = None
    spec = TableSpec(target=target, task=task, inputs=dict(SPEC.inputs))
    preprocessor, rows, encoded_target = Preprocessor.fit_transform(frame, spec)
    apart = Preprocessor.fit(frame, spec)
    assert preprocessor == apart
    np.testing.assert_array_equal(rows.numeric, apart.transform(frame).numeric)
    np.testing.assert_array_equal(rows.categorical, apart.transform(frame).categorical)
    np.testing.assert_array_equal(encoded_target, apart.encode_target(frame[target]))
