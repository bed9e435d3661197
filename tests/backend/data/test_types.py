"""Typed columns: the reader keeps integer, float, boolean, datetime and string columns (nested ->
JSON text with a warning), the dataset record keeps the schema and its input/target columns, and
the text tasks still read their columns as text, spelled as in the file."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from backend.data.store import IngestOptions, ingest, ingest_summary, load_split
from backend.data.reading import column_schema, read_arrow, typed_table

LIMITS = dict(max_bytes=10 << 20, max_rows=10_000)
CSV = ("text,label,count,score,flag,when,code\n"
       + "".join(f"text number {i} is {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'},{i},{i / 4},"
                 f"{'true' if i % 3 else 'false'},2026-01-{i % 28 + 1:02d},0{i % 5}\n" for i in range(40))
       + "one more text,pos,,0.5,false,2026-02-01 10:30:00,07\n")


def kinds(read) -> dict[str, str]:
    return {column["name"]: column["type"] for column in column_schema(read)}


def test_csv_columns_get_their_types_and_keep_their_text(tmp_path):
    path = tmp_path / "typed.csv"
    path.write_text(CSV, encoding="utf-8")
    read = read_arrow(path, **LIMITS)
    assert kinds(read) == {"text": "string", "label": "string", "count": "integer", "score": "float",
                           "flag": "boolean", "when": "datetime", "code": "integer"}
    typed = typed_table(read)
    assert typed["count"].to_pylist()[-2:] == [39, None]  # a blank cell is a missing value
    assert typed["when"].to_pylist()[-1] == datetime(2026, 2, 1, 10, 30)
    assert read.table["code"].to_pylist()[:2] == ["00", "01"]  # the text view keeps the spelling


def test_json_and_parquet_keep_their_own_types_and_nested_cells_become_json_text(tmp_path):
    records = [{"text": f"row {i}", "n": i, "x": i + 0.5, "ok": i % 2 == 0, "tags": ["a", str(i)]} for i in range(5)]
    path = tmp_path / "typed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    read = read_arrow(path, **LIMITS)
    assert kinds(read) == {"text": "string", "n": "integer", "x": "float", "ok": "boolean", "tags": "string"}
    assert typed_table(read)["tags"].to_pylist()[1] == '["a", "1"]'
    assert any("'tags'" in warning and "JSON text" in warning for warning in read.warnings)

    table = pa.table({"text": ["a", "b"], "when": pa.array([datetime(2026, 1, 1), None], pa.timestamp("ms")),
                      "size": pa.array([1, 2], pa.int16()), "city": pa.array(["x", "y"]).dictionary_encode(),
                      "points": pa.array([[1, 2], [3]])})
    pq.write_table(table, tmp_path / "typed.parquet")
    read = read_arrow(tmp_path / "typed.parquet", **LIMITS)
    assert kinds(read) == {"text": "string", "when": "datetime", "size": "integer", "city": "string",
                           "points": "string"}
    assert read.table["size"].to_pylist() == ["1", "2"]  # what the text tasks read, as before


def test_the_dataset_record_keeps_the_schema_inputs_and_target(tmp_path, settings, repo):
    path = tmp_path / "typed.csv"
    path.write_text(CSV, encoding="utf-8")
    outcome = ingest(path, IngestOptions(text_column="text", label_column="label"), settings=settings, repo=repo)
    record = repo.get_dataset(outcome.dataset.id)
    assert {c["name"]: c["type"] for c in record.columns}["score"] == "float"
    assert (record.input_columns, record.target_column) == (["text"], "label")
    assert ingest_summary(outcome)["columns"] == record.columns
    stored = pq.read_schema(Path(record.path) / "train.parquet")  # the text task's columns, as text
    assert stored.names == ["text", "label"] and all(pa.types.is_string(t) or pa.types.is_large_string(t)
                                                     for t in stored.types)
    assert len(load_split(record, "train")) == record.train_rows

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of text\nanother line\n" * 20, encoding="utf-8")
    outcome = ingest(corpus, IngestOptions(task="text-generation"), settings=settings, repo=repo)
    record = repo.get_dataset(outcome.dataset.id)
    assert (record.columns, record.input_columns, record.target_column) == \
        ([{"name": "text", "type": "string"}], ["text"], None)
