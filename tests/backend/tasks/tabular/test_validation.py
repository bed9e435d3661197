"""The validation report: leakage, duplicates, overlap, balance, and every blocking error."""

import numpy as np
import pandas as pd
import pytest

from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.splitting import split_table
from backend.tasks.tabular.validation import validate_table

INPUTS = {"x": "numeric", "noise": "numeric", "color": "categorical", "flag": "boolean", "when": "datetime"}


def _spec(**inputs):
    return TableSpec(target="label", task="classification", inputs={**INPUTS, **inputs})


def test_clean_table_has_no_errors_and_counts_classes(mixed):
    report = validate_table(mixed, _spec())
    assert report.ok and not report.leaks
    assert report.rows == 400
    assert report.class_counts == mixed["label"].value_counts().to_dict()
    assert report.cardinality["color"] == 3
    assert report.missing_share["x"] == 0.0


def test_planted_leaks_are_found(mixed):
    rng = np.random.default_rng(1)
    mixed["label_copy"] = mixed["label"]
    mixed["outcome_code"] = mixed["label"].map({"yes": "Y1", "no": "N0"})       # renamed copy
    mixed["score"] = np.where(mixed["label"] == "yes", 1 + rng.random(400), -rng.random(400))  # threshold
    spec = _spec(label_copy="categorical", outcome_code="categorical", score="numeric")
    report = validate_table(mixed, spec)
    assert {leak.column for leak in report.leaks} == {"label_copy", "outcome_code", "score"}
    assert any("leaks the target" in w and "label_copy" in w for w in report.warnings)
    assert report.ok   # a warning, not a blocking error: the user decides


def test_regression_leak_by_correlation(mixed):
    mixed["amount_in_cents"] = mixed["amount"] * 100
    spec = TableSpec(target="amount", task="regression", inputs={"x": "numeric", "amount_in_cents": "numeric"})
    report = validate_table(mixed, spec)
    assert [leak.column for leak in report.leaks] == ["amount_in_cents"]
    assert report.target_summary["min"] == pytest.approx(mixed["amount"].min())


def test_duplicates_conflicts_and_train_validation_overlap(mixed):
    duplicated = pd.concat([mixed, mixed.head(5)], ignore_index=True)
    conflict = mixed.head(3).assign(label=lambda f: np.where(f["label"] == "yes", "no", "yes"))
    table = pd.concat([duplicated, conflict], ignore_index=True)
    train, validation = split_table(table, _spec(), seed=0)
    report = validate_table(table, _spec(), validation=validation.head(50))
    assert report.duplicate_rows == 5
    # rows 0-2 occur three times: original, exact copy, copy with the other label
    assert report.conflicting_duplicate_rows == 9
    assert report.train_validation_overlap == 50   # the validation rows were carved from this very table
    clean_train, clean_validation = split_table(mixed, _spec(), seed=0)
    assert validate_table(clean_train, _spec(), validation=clean_validation).train_validation_overlap == 0


@pytest.mark.parametrize("change, spec, message", [
    (lambda f: f, TableSpec(target="nope", task="classification", inputs=INPUTS), "no target column 'nope'"),
    (lambda f: f.assign(label="yes"), _spec(), "has one value \\('yes'\\) in every row"),
    (lambda f: f.assign(label=["rare"] + ["yes", "no"] * 199 + ["no"]), _spec(), "Class 'rare' .* only 1 row"),
    (lambda f: f, TableSpec(target="label", task="classification", inputs={}), "No usable input column"),
    (lambda f: f.assign(x=1.0), TableSpec(target="label", task="classification", inputs={"x": "numeric"}),
     "No usable input column"),
    (lambda f: f, TableSpec(target="label", task="regression", inputs=INPUTS), "not numbers.*choose classification"),
    (lambda f: f.assign(amount=3.0), TableSpec(target="amount", task="regression", inputs=INPUTS),
     "one value in every row"),
    (lambda f: f.assign(label=None), _spec(), "target column 'label' is empty"),
])
def test_blocking_errors_say_what_to_do(mixed, change, spec, message):
    report = validate_table(change(mixed), spec)
    assert not report.ok
    assert any(pd.Series([e]).str.contains(message).iloc[0] for e in report.errors), report.errors


def test_adult_report_has_no_blocking_error_and_finds_its_duplicates():
    from backend.tasks.tabular.columns import default_spec, infer_schema
    from backend.tasks.tabular.reading import read_table
    from tests.backend.tasks.tabular.conftest import ADULT
    if not ADULT.exists():
        pytest.skip("needs ../shared/data/adult/adult.csv")
    frame = read_table(ADULT)
    spec = default_spec(infer_schema(frame))
    report = validate_table(frame, spec)
    assert report.ok and not report.leaks
    assert report.class_counts == {"<=50K": 24720, ">50K": 7841}
    assert report.duplicate_rows == 24          # known exact repeats in adult.data
    assert report.missing_share["occupation"] == pytest.approx(1843 / 32561)


def test_a_table_too_small_to_split_gets_a_clear_message(mixed):
    from backend.errors import UserError
    with pytest.raises(UserError, match="Cannot carve a 20% validation split from 4 rows"):
        split_table(mixed.head(4), _spec())
