"""Reading table uploads: missing markers, stripped spaces, xlsx sheets, Parquet, JSON; clear errors."""

import pandas as pd
import pytest

from backend.errors import UserError
from backend.tasks.tabular.columns import infer_schema
from backend.tasks.tabular.reading import list_sheets, read_table
from tests.backend.tasks.tabular.conftest import ADULT


@pytest.mark.skipif(not ADULT.exists(), reason="needs ../shared/data/adult/adult.csv")
def test_adult_columns_are_typed_and_income_is_the_suggested_target():
    frame = read_table(ADULT)
    schema = infer_schema(frame)
    assert len(frame) == 32561
    assert schema.column("age").kind == "numeric"
    assert schema.column("workclass").kind == "categorical"
    # "?" after ", " is read as missing, not as a category named "?" or " ?"
    assert frame["workclass"].isna().sum() == 1836
    assert "?" not in set(frame["workclass"].dropna()) and " ?" not in set(frame["workclass"].dropna())
    assert schema.column("workclass").missing_share == pytest.approx(1836 / 32561)
    assert frame.loc[0, "workclass"] == "State-gov"       # leading space stripped
    assert schema.suggested_target == "income"
    assert schema.suggested_task == "classification"


def test_missing_markers_and_spaces_after_delimiters(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\t b\t c\n1\t ?\t x\n2\t NA\t N/A\n3\t null\t \n4\t 5\t y\n", encoding="utf-8")
    frame = read_table(path)
    assert frame["b"].isna().tolist() == [True, True, True, False]
    assert frame["c"].isna().tolist() == [False, True, True, False]
    assert frame["b"].dropna().tolist() == [5]
    assert frame["c"].dropna().tolist() == ["x", "y"]


def test_semicolon_delimiter_and_cp1252_encoding(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("name;price\ncaf\xe9;1.5\nth\xe9;2.0\n".encode("latin-1"))
    frame = read_table(path)
    assert frame["name"].tolist() == ["café", "thé"]
    assert frame["price"].tolist() == [1.5, 2.0]


def test_xlsx_first_sheet_and_named_sheet(tmp_path, mixed):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        mixed.to_excel(writer, sheet_name="data", index=False)
        pd.DataFrame({"other": [1, 2], "flag": ["?", "ok"]}).to_excel(writer, sheet_name="notes", index=False)
    assert list_sheets(path) == ["data", "notes"]
    first = read_table(path)
    assert list(first.columns) == list(mixed.columns)
    assert first["x"].tolist() == pytest.approx(mixed["x"].tolist())
    schema = infer_schema(first)
    assert schema.column("color").kind == "categorical"
    assert schema.column("when").kind == "datetime"
    notes = read_table(path, sheet="notes")
    assert notes["flag"].isna().tolist() == [True, False]
    with pytest.raises(UserError, match="no sheet named 'missing'.*data, notes"):
        read_table(path, sheet="missing")


def test_parquet_json_and_jsonl(tmp_path, mixed):
    small = mixed.head(20)
    small.to_parquet(tmp_path / "t.parquet")
    small.to_json(tmp_path / "t.json", orient="records")
    small.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name in ("t.parquet", "t.json", "t.jsonl"):
        frame = read_table(tmp_path / name)
        assert frame["x"].tolist() == pytest.approx(small["x"].tolist()), name
        assert frame["label"].tolist() == small["label"].tolist(), name


@pytest.mark.parametrize("name, content, message", [
    ("t.docx", b"x", "tables can be"),
    ("t.csv", b"", "Could not read|holds no rows"),
    ("t.xlsx", b"not a workbook", "not a readable .xlsx"),
    ("t.json", b"{not json", "Could not read t.json as JSON"),
    ("t.csv", b"a,b\n1,2\n3,4,5,6\n", "Could not read t.csv as delimited text"),   # ragged rows
])
def test_bad_files_get_clear_messages(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_table(path)


def test_absent_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
