"""prepare_dataset: columns, cleaning, checks, split, report and hash (no storage involved)."""

import json
from collections import Counter

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.data.store import IngestOptions, prepare_dataset
from backend.errors import UserError

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_rows": 1_000_000}
REPORT_KEYS = {"rows", "empty_rows_dropped", "nan_labels_dropped", "exact_duplicates", "conflicting_duplicates",
               "train_validation_overlap", "classes", "labels", "text_length", "long_text_share", "token_budget",
               "warnings", "encoding", "delimiter"}


def write(folder, name, content, encoding="utf-8"):
    path = folder / name
    path.write_text(content, encoding=encoding, newline="")
    return path


def table_csv(folder, rows, name="d.csv", header="text,label"):
    return write(folder, name, header + "\n" + "".join(f"{text},{label}\n" for text, label in rows))


def prepare(path, validation_path=None, **options):
    return prepare_dataset(path, IngestOptions(**options), validation_path, **LIMITS)


def pairs(prepared):
    both = pd.concat([prepared.train, prepared.validation])
    return Counter(zip(both["text"], both["label"]))


# --- the real datasets ---------------------------------------------------------------------------

def test_sst2_columns_rows_classes_and_stratified_split(shared_data):
    prepared = prepare(shared_data / "sst2" / "train.csv")
    assert (prepared.text_column, prepared.label_column) == ("sentence", "sentiment")
    assert prepared.rows == 6920 and prepared.labels == ["negative", "positive"]
    assert prepared.classes == {"negative": 3310, "positive": 3610}
    assert len(prepared.validation) == 692 and len(prepared.train) == 6228
    share = (prepared.validation["label"] == "positive").mean()
    assert abs(share - 3610 / 6920) < 0.002  # stratified: same class balance as the whole
    assert REPORT_KEYS <= prepared.report.keys()
    json.dumps(prepared.report)  # JSON-able


def test_sms_spam_detected_without_hints_and_round_trips(shared_data):
    path = shared_data / "sms_spam" / "sms_spam.tsv"
    prepared = prepare(path)
    assert (prepared.text_column, prepared.label_column) == ("SMS", "Label")
    assert prepared.rows == 5574 and prepared.classes == {"ham": 4827, "spam": 747}
    report = prepared.report
    assert report["delimiter"] == "\t" and report["encoding"] == "utf-8" and report["quoting"] is False
    assert report["exact_duplicates"] > 0 and report["train_validation_overlap"] > 0
    source = pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    assert pairs(prepared) == Counter(zip(source["SMS"], source["Label"]))


def test_split_is_seeded_and_keeps_source_order(shared_data):
    path = shared_data / "sst2" / "dev.csv"
    first, again, other = prepare(path), prepare(path), prepare(path, seed=7)
    assert first.validation["text"].tolist() == again.validation["text"].tolist()
    assert first.content_hash == again.content_hash
    assert first.validation["text"].tolist() != other.validation["text"].tolist()
    assert first.content_hash != other.content_hash
    source = pd.read_csv(path)["sentence"].tolist()
    positions = [source.index(t) for t in first.train["text"].head(50)]
    assert positions == sorted(positions)


def test_user_columns_override_the_guess(tmp_path):
    path = write(tmp_path, "d.csv", "label,text,other\n" + "".join(f"{i % 2},t{i},o{i % 2}\n" for i in range(10)))
    prepared = prepare(path, text_column="TEXT", label_column="other")
    assert (prepared.text_column, prepared.label_column) == ("text", "other")
    assert prepared.labels == ["o0", "o1"]


# --- cleaning and labels -------------------------------------------------------------------------

def test_labels_are_strings_sorted_and_mixed_types_merge(tmp_path):
    records = [{"text": f"t{i}", "label": value} for i, value in enumerate([1, "1", 10, "10", 2, 2.0, " 2 "])]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(records))
    prepared = prepare(path)
    assert prepared.labels == ["1", "2", "10"]  # integer labels sort as numbers
    assert prepared.classes == {"1": 2, "2": 3, "10": 2}
    assert set(pd.concat([prepared.train, prepared.validation])["label"]) == {"1", "2", "10"}


def test_nan_labels_and_empty_texts_are_dropped_and_counted(tmp_path):
    rows = [("a", "x"), ("b", ""), ("  ", "y"), ("c", "y"), ("d", "x"), ("e", "  "), ("f", "y"), ("", "x")]
    prepared = prepare(table_csv(tmp_path, rows))
    report = prepared.report
    assert report["empty_rows_dropped"] == 2 and report["nan_labels_dropped"] == 2
    assert prepared.rows == 4
    assert any("no label" in w for w in prepared.warnings)
    assert any("empty text" in w for w in prepared.warnings)


def test_texts_of_only_whitespace_count_as_empty(tmp_path):
    blanks = ["\t", "\u00a0\u00a0", " \u3000 ", "\x0b"]  # tab, no-break spaces, ideographic space, vertical tab
    kept = ["a", "\u00a0b", "c ", "d", "e", "f"]
    rows = [(text, "xy"[i % 2]) for i, text in enumerate(blanks + kept)]
    prepared = prepare(table_csv(tmp_path, rows))
    assert prepared.report["empty_rows_dropped"] == len(blanks)
    stored = pd.concat([prepared.train, prepared.validation])["text"].tolist()
    assert sorted(stored) == sorted(kept)


def test_duplicates_conflicts_and_overlap_with_a_validation_file(tmp_path):
    train = table_csv(tmp_path, [("same", "a"), ("same", "a"), ("clash", "a"), ("clash", "b"),
                                 ("u1", "a"), ("u2", "b"), ("u3", "b")], name="train.csv")
    validation = table_csv(tmp_path, [("u3", "b"), ("fresh", "a"), ("last", "b")], name="validation.csv")
    prepared = prepare(train, validation)
    report = prepared.report
    assert report["exact_duplicates"] == 2  # "same,a" twice, and "u3,b" once more in validation
    assert report["conflicting_duplicates"] == 1  # "clash"
    assert report["train_validation_overlap"] == 1  # "u3"
    assert report["validation_source"] == "file"
    # No shuffling with a validation file: both splits keep the files' order exactly.
    assert prepared.train["text"].tolist() == ["same", "same", "clash", "clash", "u1", "u2", "u3"]
    assert prepared.validation["text"].tolist() == ["u3", "fresh", "last"]
    assert prepared.validation["label"].tolist() == ["b", "a", "b"]


def test_validation_file_with_unknown_label(tmp_path):
    train = table_csv(tmp_path, [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")], name="train.csv")
    validation = table_csv(tmp_path, [("e", "z")], name="validation.csv")
    with pytest.raises(UserError, match="labels that the training file lacks: z"):
        prepare(train, validation)


def test_long_texts_are_kept_and_counted(tmp_path):
    long_text = "word " * 20_000  # 100,000 characters, 20,000 words
    rows = [(long_text.strip(), "a"), ("short one", "a"), ("tiny", "b"), ("small", "b")]
    prepared = prepare(table_csv(tmp_path, rows), token_budget=16)
    report = prepared.report
    assert report["text_length"]["chars"]["max"] == 99_999
    assert report["text_length"]["words"]["max"] == 20_000
    assert report["long_text_share"] == 0.25 and report["token_budget"] == 16
    assert long_text.strip() in set(pd.concat([prepared.train, prepared.validation])["text"])


def test_length_statistics(tmp_path):
    rows = [("one", "a"), ("one two", "a"), ("one two three", "b"), ("one  two\tthree four", "b")]
    words = prepare(table_csv(tmp_path, rows)).report["text_length"]["words"]
    assert words["min"] == 1 and words["max"] == 4 and words["mean"] == 2.5 and words["median"] == 2.5


# --- blocking errors -----------------------------------------------------------------------------

def test_one_class_only(tmp_path):
    with pytest.raises(UserError, match='only the class "x"'):
        prepare(table_csv(tmp_path, [("a", "x"), ("b", "x"), ("c", "x")]))


def test_a_class_with_one_row(tmp_path):
    with pytest.raises(UserError, match='"y" \\(1 row\\)'):
        prepare(table_csv(tmp_path, [("a", "x"), ("b", "x"), ("c", "y")]))


def test_no_label_column(tmp_path):
    with pytest.raises(UserError, match="Found no label column"):
        prepare(write(tmp_path, "d.txt", "just some lines\nof plain text\n"))


@pytest.mark.parametrize("option", ["text_column", "label_column"])
def test_misspelled_column_lists_columns_and_suggests(tmp_path, option):
    path = table_csv(tmp_path, [("a", "x"), ("b", "y")], header="sentence,sentiment")
    wrong = {"text_column": "sentense", "label_column": "sentimnet"}[option]
    with pytest.raises(UserError) as info:
        prepare(path, **{option: wrong})
    assert "sentence, sentiment" in str(info.value) and "Did you mean" in str(info.value)


def test_same_column_for_text_and_label(tmp_path):
    with pytest.raises(UserError, match="both the text and the label"):
        prepare(table_csv(tmp_path, [("a", "x"), ("b", "y")]), text_column="text", label_column="text")


@pytest.mark.parametrize("options", [{"task": "translation"}, {"validation_fraction": 1.0},
                                     {"validation_fraction": 0}, {"token_budget": 0}])
def test_bad_options(tmp_path, options):
    with pytest.raises(UserError):
        prepare(table_csv(tmp_path, [("a", "x"), ("b", "y")]), **options)


# --- formats and hashing -------------------------------------------------------------------------

def test_same_content_in_csv_jsonl_and_parquet_hashes_alike(tmp_path):
    rows = [(f"text {i}", "ab"[i % 2]) for i in range(20)]
    csv_path = table_csv(tmp_path, rows)
    jsonl_path = tmp_path / "d.jsonl"
    jsonl_path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    parquet_path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [label for _, label in rows]}), parquet_path)
    hashes = {prepare(p).content_hash for p in (csv_path, jsonl_path, parquet_path)}
    assert len(hashes) == 1
    assert prepare(csv_path, name="another name").content_hash in hashes  # the name is not content
    assert prepare(csv_path, validation_fraction=0.2).content_hash not in hashes


def test_txt_classification_one_example_per_line(tmp_path):
    lines = "".join(f"{'pos' if i % 2 else 'neg'}\tline number {i}\n" for i in range(20))
    prepared = prepare(write(tmp_path, "d.txt", lines))
    assert prepared.rows == 20 and prepared.labels == ["neg", "pos"]
    assert "line number 0" in set(pd.concat([prepared.train, prepared.validation])["text"])


# --- text generation -----------------------------------------------------------------------------

def test_generation_from_txt_splits_by_position(shared_data):
    path = shared_data / "tiny_shakespeare" / "input.txt"
    prepared = prepare(path, task="text-generation")
    source = path.read_text(encoding="utf-8")
    train, validation = prepared.train["text"].iloc[0], prepared.validation["text"].iloc[0]
    assert train + validation == source
    assert abs(len(validation) / len(source) - 0.1) < 0.001 and train.endswith("\n")
    assert list(prepared.train.columns) == ["text"] and prepared.labels == [] and prepared.label_column is None
    report = prepared.report
    assert report["characters"] == 1_115_394 and report["distinct_characters"] == 65
    assert report["lines"] == source.count("\n")
    json.dumps(report)


def test_generation_from_a_table_column(tmp_path):
    path = table_csv(tmp_path, [("first line", "a"), ("", "b"), ("second line", "a"), ("third", "b")])
    prepared = prepare(path, task="text-generation", validation_fraction=0.3)
    corpus = prepared.train["text"].iloc[0] + prepared.validation["text"].iloc[0]
    assert corpus == "first line\nsecond line\nthird"
    assert prepared.text_column == "text" and prepared.report["empty_rows_dropped"] == 1


def test_generation_with_validation_file_and_crlf(tmp_path):
    train = write(tmp_path, "train.txt", "one\r\ntwo\r\n")
    validation = write(tmp_path, "valid.txt", "three\n")
    prepared = prepare(train, validation, task="text-generation")
    assert prepared.train["text"].iloc[0] == "one\ntwo\n" and prepared.validation["text"].iloc[0] == "three\n"


@pytest.mark.parametrize("content", ["   \n\n", "x"])
def test_generation_needs_some_text(tmp_path, content):
    with pytest.raises(UserError):
        prepare(write(tmp_path, "d.txt", content), task="text-generation")
