"""Column kinds and the suggested target, task and columns to drop."""

import numpy as np
import pandas as pd

from backend.tasks.tabular.columns import default_spec, describe_column, infer_schema, suggest_target, suggest_task


def test_kinds_of_a_mixed_table(mixed):
    schema = infer_schema(mixed)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"x": "numeric", "noise": "numeric", "color": "categorical", "flag": "boolean",
                     "when": "datetime", "label": "boolean", "amount": "numeric"}   # yes/no
    assert schema.suggested_target == "label"


def test_string_booleans_dates_and_small_integer_codes():
    frame = pd.DataFrame({"yes_no": ["yes", "no", "Yes", None] * 5,
                          "date": ["2024-01-05", "2024-02-11 10:00", "2023-12-31", "2024-03-01"] * 5,
                          "rating": [1, 2, 3, 4] * 5,
                          "numbers_as_text": ["1.5", "2", "3.25", "4"] * 5})
    kinds = {name: describe_column(frame[name]).kind for name in frame.columns}
    assert kinds == {"yes_no": "boolean", "date": "datetime", "rating": "categorical",
                     "numbers_as_text": "numeric"}


def test_free_text_and_ids_are_suggested_for_dropping():
    rows = 60
    frame = pd.DataFrame({
        "customer_id": range(1000, 1000 + rows),
        "code": [f"C{i:04d}" for i in range(rows)],
        "comment": [f"The delivery number {i} arrived late and the box was damaged on arrival" for i in range(rows)],
        "const": ["same"] * rows,
        "amount": np.linspace(0, 1, rows),      # unique floats are measurements, not ids
        "churn": ["yes", "no"] * (rows // 2),
    })
    schema = infer_schema(frame)
    assert schema.column("comment").kind == "text"
    assert {c.name for c in schema.columns if c.suggest_drop} == {"customer_id", "code", "comment", "const"}
    assert schema.column("customer_id").id_like and schema.column("const").constant
    assert any("free text" in note for note in schema.notes)
    assert schema.suggested_target == "churn"
    assert default_spec(schema).inputs == {"amount": "numeric"}


def test_target_suggestion_by_name_else_last_column():
    assert suggest_target(pd.DataFrame({"Income": [1], "a": [2]})) == "Income"
    assert suggest_target(pd.DataFrame({"y": [1], "a": [2]})) == "y"
    assert suggest_target(pd.DataFrame({"a": [1], "b": [2]})) == "b"


def test_task_suggestion_on_bundled_sets():
    from sklearn.datasets import load_diabetes, load_wine
    assert suggest_task(load_wine(as_frame=True).frame["target"]) == "classification"   # 0/1/2
    assert suggest_task(load_diabetes(as_frame=True).frame["target"]) == "regression"
    assert suggest_task(pd.Series([True, False, True])) == "classification"
    assert suggest_task(pd.Series([0.5, 1.25, 3.0, 4.5])) == "regression"


def test_dates_with_mixed_utc_offsets_parse_instead_of_raising():
    from backend.tasks.tabular.columns import parse_datetimes
    values = pd.Series(["2024-01-01 10:00+01:00", "2024-01-02 11:00+05:00", "2024-03-01 08:30", None, "x"] * 4)
    parsed = parse_datetimes(values)
    assert parsed.notna().tolist()[:5] == [True, True, True, False, False]
    assert parsed.dt.hour.tolist()[:3] == [9, 6, 8]     # offsets converted to UTC; naive values keep their hour
