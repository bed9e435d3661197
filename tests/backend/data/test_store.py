"""ingest/store_dataset/load_split against a real SQLite repository: round trips, reuse, safety."""

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import backend.data.store as data_module
from backend.data.store import IngestOptions, ingest, ingest_summary, load_split, prepare_dataset, store_dataset
from backend.errors import UserError

SUMMARY_KEYS = {"dataset_id", "name", "rows", "train_rows", "validation_rows", "text_column", "label_column",
                "classes", "labels", "warnings", "reused"}


def write(folder, name, content, encoding="utf-8"):
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding=encoding, newline="")
    return path


def stored_state(repo, settings):
    """Everything a failed ingest must leave alone: the DB rows and every stored file's bytes."""
    rows = [(d.id, d.name, d.content_hash, d.path, d.rows, json.dumps(d.report, sort_keys=True))
            for d in repo.list_datasets()]
    files = {str(p.relative_to(settings.datasets_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(settings.datasets_dir.rglob("*")) if p.is_file()}
    return rows, files


def both_splits(record):
    return pd.concat([load_split(record, "train"), load_split(record, "validation")])


# --- round trips ---------------------------------------------------------------------------------

def test_sst2_round_trip(shared_data, settings, repo):
    path = shared_data / "sst2" / "train.csv"
    outcome = ingest(path, IngestOptions(), settings=settings, repo=repo)
    record = outcome.dataset
    assert not outcome.reused and record.rows == 6920 and record.labels == ["negative", "positive"]
    assert (record.text_column, record.label_column) == ("sentence", "sentiment")
    assert record.train_rows + record.validation_rows == 6920 and record.validation_rows == 692
    source = pd.read_csv(path, dtype=str)
    stored = both_splits(record)
    assert list(stored.columns) == ["text", "label"]
    # Compared as multisets: the stratified split picks rows (each split keeps source order).
    assert Counter(zip(stored["text"], stored["label"])) == Counter(zip(source["sentence"], source["sentiment"]))
    assert record.path.endswith(record.content_hash[:16])
    summary = ingest_summary(outcome)
    assert SUMMARY_KEYS <= summary.keys() and summary["dataset_id"] == record.id
    json.dumps(summary)


def test_sms_spam_round_trip(shared_data, settings, repo):
    path = shared_data / "sms_spam" / "sms_spam.tsv"
    record = ingest(path, IngestOptions(name="sms"), settings=settings, repo=repo).dataset
    assert record.name == "sms" and record.classes == {"ham": 4827, "spam": 747}
    source = pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    stored = both_splits(record)
    assert Counter(zip(stored["text"], stored["label"])) == Counter(zip(source["SMS"], source["Label"]))


def test_validation_file_is_stored_in_file_order(shared_data, settings, repo):
    train_path, dev_path = shared_data / "sst2" / "train.csv", shared_data / "sst2" / "dev.csv"
    record = ingest(train_path, IngestOptions(), validation_path=dev_path, settings=settings, repo=repo).dataset
    assert (record.train_rows, record.validation_rows) == (6920, 872)
    for split, path in (("train", train_path), ("validation", dev_path)):
        source, stored = pd.read_csv(path, dtype=str), load_split(record, split)
        assert stored["text"].tolist() == source["sentence"].tolist()  # no shuffle: exact order
        assert stored["label"].tolist() == source["sentiment"].tolist()


def test_same_content_is_reused(tmp_path, settings, repo):
    content = "text,label\n" + "".join(f"example {i},{'ab'[i % 2]}\n" for i in range(20))
    first = ingest(write(tmp_path, "a.csv", content), IngestOptions(), settings=settings, repo=repo)
    state = stored_state(repo, settings)
    second = ingest(write(tmp_path, "b.csv", content), IngestOptions(name="again"), settings=settings, repo=repo)
    assert second.reused and second.dataset.id == first.dataset.id and second.dataset.name == first.dataset.name
    assert ingest_summary(second)["reused"] is True
    assert any("uploaded before" in w for w in second.warnings)
    assert stored_state(repo, settings) == state  # nothing written
    other_split = ingest(write(tmp_path, "c.csv", content), IngestOptions(seed=1), settings=settings, repo=repo)
    assert not other_split.reused and other_split.dataset.id != first.dataset.id


@pytest.mark.parametrize("name", ["d.json", "d.jsonl", "d.parquet", "d.txt"])
def test_other_formats_ingest(tmp_path, settings, repo, name):
    rows = [(f"example number {i}", "ab"[i % 3 == 0]) for i in range(30)]
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table({"review": [t for t, _ in rows], "category": [c for _, c in rows]}), path)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps({"review": t, "category": c}) + "\n" for t, c in rows))
    elif name.endswith(".json"):
        path.write_text(json.dumps([{"review": t, "category": c} for t, c in rows]))
    else:
        path.write_text("".join(f"{c}\t{t}\n" for t, c in rows))
    record = ingest(path, IngestOptions(), settings=settings, repo=repo).dataset
    assert record.rows == 30 and record.classes == {"a": 20, "b": 10}
    stored = both_splits(record)
    assert Counter(zip(stored["text"], stored["label"])) == Counter(rows)


def test_text_generation_round_trip(shared_data, settings, repo):
    path = shared_data / "tiny_shakespeare" / "input.txt"
    outcome = ingest(path, IngestOptions(task="text-generation"), settings=settings, repo=repo)
    record = outcome.dataset
    assert record.task == "text-generation" and record.label_column is None and record.labels == []
    train, validation = load_split(record, "train"), load_split(record, "validation")
    assert list(train.columns) == ["text"] and len(train) == len(validation) == 1
    assert train["text"].iloc[0] + validation["text"].iloc[0] == path.read_text(encoding="utf-8")
    assert record.report["characters"] == 1_115_394
    assert ingest_summary(outcome)["label_column"] is None


def test_load_split_rejects_unknown_split(tmp_path, settings, repo):
    content = "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(10))
    record = ingest(write(tmp_path, "d.csv", content), IngestOptions(), settings=settings, repo=repo).dataset
    with pytest.raises(UserError):
        load_split(record, "test")


# --- failures change nothing ---------------------------------------------------------------------

def _rows(n=20, label=lambda i: "ab"[i % 2]):
    return "text,label\n" + "".join(f"sentence {i},{label(i)}\n" for i in range(n))


BAD_INPUTS = {
    "empty file": ("d.csv", "", {}),
    "header only": ("d.csv", "text,label\n", {}),
    "binary garbage": ("d.csv", random.Random(1).randbytes(4096), {}),
    "unsupported extension": ("d.xlsx", b"PK\x03\x04 zip", {}),
    "over the size limit": ("d.csv", _rows(40_000), {}),
    "one class": ("d.csv", _rows(label=lambda i: "a"), {}),
    "a class with one row": ("d.csv", _rows(label=lambda i: "b" if i == 3 else "a"), {}),
    "missing column": ("d.csv", _rows(), {"label_column": "category"}),
    "misspelled column": ("d.csv", _rows(), {"text_column": "txt"}),
    "no label column": ("d.txt", "plain line one\nplain line two\n", {}),
}

SURVIVABLE_INPUTS = {
    "nan labels": ("d.csv", _rows() + "orphan,\n", "no label"),
    "ragged rows": ("d.csv", _rows() + "one,too,many\n", "without the header's 2 fields"),
    "100k-character text": ("d.csv", _rows() + ("long " * 20_000) + ",a\n", None),
    "utf-16": ("d.csv", _rows().encode("utf-16"), None),
    "bom": ("d.csv", "\ufeff" + _rows(), None),
    "cp1252": ("d.csv", _rows().replace("sentence 1,", "café 1,").encode("cp1252"), "not valid UTF-8"),
}


@pytest.fixture
def stored_before(shared_data, settings, repo):
    ingest(shared_data / "sst2" / "dev.csv", IngestOptions(), settings=settings, repo=repo)
    return stored_state(repo, settings)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_user_error_and_changes_nothing(tmp_path, settings, repo, stored_before, case):
    name, content, options = BAD_INPUTS[case]
    small = settings.model_copy(update={"max_upload_mb": 0.25})  # the "over the size limit" file is ~0.5 MB
    with pytest.raises(UserError) as info:
        ingest(write(tmp_path, name, content), IngestOptions(**options), settings=small, repo=repo)
    assert len(str(info.value)) > 30  # says what is wrong and what to do
    assert stored_state(repo, settings) == stored_before
    assert not [p for p in settings.datasets_dir.iterdir() if p.name.startswith(".ingest-")]


@pytest.mark.parametrize("case", list(SURVIVABLE_INPUTS))
def test_awkward_input_is_stored_with_warnings_and_leaves_others_alone(tmp_path, settings, repo, stored_before,
                                                                       case):
    name, content, warning = SURVIVABLE_INPUTS[case]
    outcome = ingest(write(tmp_path, name, content), IngestOptions(), settings=settings, repo=repo)
    assert outcome.dataset.rows >= 20
    if warning:
        assert any(warning in w for w in outcome.warnings)
    rows, files = stored_state(repo, settings)
    assert set(stored_before[0]) <= set(rows)
    assert stored_before[1].items() <= files.items()


def test_failed_database_write_removes_the_written_folder(tmp_path, settings, repo, stored_before):
    class BrokenRepository:
        def find_dataset_by_hash(self, content_hash):
            return repo.find_dataset_by_hash(content_hash)

        def add_dataset(self, **fields):
            raise RuntimeError("database is locked")

    prepared = prepare_dataset(write(tmp_path, "d.csv", _rows()), IngestOptions(), max_bytes=10**7, max_rows=10**6)
    with pytest.raises(RuntimeError):
        store_dataset(prepared, BrokenRepository(), settings.datasets_dir)
    assert stored_state(repo, settings) == stored_before
    assert not (settings.datasets_dir / prepared.content_hash[:16]).exists()


def test_leftover_folder_from_a_crash_is_replaced(tmp_path, settings, repo):
    prepared = prepare_dataset(write(tmp_path, "d.csv", _rows()), IngestOptions(), max_bytes=10**7, max_rows=10**6)
    leftover = settings.datasets_dir / prepared.content_hash[:16]
    leftover.mkdir(parents=True)
    (leftover / "train.parquet").write_bytes(b"half-written")
    record = store_dataset(prepared, repo, settings.datasets_dir)
    assert len(load_split(record, "train")) == len(prepared.train)


def test_big_split_is_written_as_parts_and_loads_in_order(tmp_path, settings, repo, monkeypatch):
    # Parts start at 16 MB; a small PART_BYTES makes a 600-row file big enough to be split.
    monkeypatch.setattr(data_module, "PART_BYTES", 2_000)
    monkeypatch.setattr(data_module, "MAX_WRITERS", 3)
    monkeypatch.setattr(data_module, "_cores", lambda: 8)  # parts: min(cores, MAX_WRITERS, bytes / PART_BYTES)
    rows = [(f"row {i} " + "x" * (i % 17), "abc"[i % 3]) for i in range(600)]
    path = write(tmp_path, "d.csv", "text,label\n" + "".join(f"{t},{c}\n" for t, c in rows))
    record = ingest(path, IngestOptions(), validation_path=None, settings=settings, repo=repo).dataset
    names = sorted(p.name for p in Path(record.path).iterdir())
    # train (~12 kB) in one part per core; validation (~1.4 kB, under PART_BYTES) stays one file
    assert names == ["train.1.parquet", "train.2.parquet", "train.parquet", "validation.parquet"]
    train, validation = load_split(record, "train"), load_split(record, "validation")
    assert len(train) == record.train_rows and len(validation) == record.validation_rows
    stored = pd.concat([train, validation])
    assert Counter(zip(stored["text"], stored["label"])) == Counter(rows)
    numbers = [int(text.split()[1]) for text in train["text"]]
    assert numbers == sorted(numbers)  # parts read back in order: each split keeps the source order
    (Path(record.path) / "train.2.parquet").unlink()  # a lost part is an error, not a smaller dataset
    with pytest.raises(UserError, match="incomplete"):
        load_split(record, "train")


def test_failed_part_write_stores_nothing(tmp_path, settings, repo, stored_before, monkeypatch):
    monkeypatch.setattr(data_module, "PART_BYTES", 2_000)
    monkeypatch.setattr(data_module, "_cores", lambda: 2)
    real_write = pq.write_table

    def failing_write(table, where, **kwargs):
        if str(where).endswith("train.1.parquet"):
            raise OSError("No space left on device")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(data_module.pq, "write_table", failing_write)
    rows = "".join(f"row {i} {'y' * (i % 13)},{'ab'[i % 2]}\n" for i in range(600))
    with pytest.raises(OSError, match="No space left"):
        ingest(write(tmp_path, "d.csv", "text,label\n" + rows), IngestOptions(), settings=settings, repo=repo)
    assert stored_state(repo, settings) == stored_before
    assert not [p for p in settings.datasets_dir.iterdir() if p.name.startswith(".ingest-")]


def test_a_big_corpus_stays_one_file_per_split(tmp_path, settings, repo, monkeypatch):
    monkeypatch.setattr(data_module, "PART_BYTES", 100)
    monkeypatch.setattr(data_module, "_cores", lambda: 2)
    text = "".join(f"line {i} of the corpus\n" for i in range(200))
    path = write(tmp_path, "corpus.txt", text)
    record = ingest(path, IngestOptions(task="text-generation"), settings=settings, repo=repo).dataset
    assert sorted(p.name for p in Path(record.path).iterdir()) == ["train.parquet", "validation.parquet"]
    assert load_split(record, "train")["text"][0] + load_split(record, "validation")["text"][0] == text
