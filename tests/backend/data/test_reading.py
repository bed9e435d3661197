"""Reading uploads: formats, encodings, delimiters, quoting, limits, column guesses (backend.data.reading, data)."""

import json
import random

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.data.columns import resolve_column, suggest_columns
from backend.data.reading import read_table
from backend.errors import UserError

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_rows": 1_000_000}


def write(folder, name, content, encoding="utf-8"):
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding=encoding, newline="")
    return path


# --- the real datasets ---------------------------------------------------------------------------

def test_sms_spam_keeps_every_message_despite_stray_quotes(shared_data):
    result = read_table(shared_data / "sms_spam" / "sms_spam.tsv", **LIMITS)
    frame = result.frame
    assert list(frame.columns) == ["Label", "SMS"]
    assert len(frame) == 5574  # default CSV quoting would merge two messages into others
    assert (frame["Label"] == "spam").sum() == 747
    assert result.delimiter == "\t" and result.encoding == "utf-8"
    # A message that starts with a quote keeps its quotes and does not swallow the next line.
    quoted = frame[frame["SMS"].str.startswith('"Wen u miss someone')]
    assert len(quoted) == 1 and "\n" not in quoted["SMS"].iloc[0]


def test_sst2_reads_quoted_csv(shared_data):
    frame = read_table(shared_data / "sst2" / "train.csv", **LIMITS).frame
    assert list(frame.columns) == ["sentence", "sentiment"]
    assert len(frame) == 6920
    assert set(frame["sentiment"]) == {"negative", "positive"}
    assert not frame["sentence"].str.startswith('"').any()  # quotes of quoted fields are removed


def test_suggest_columns_on_real_headers(shared_data):
    sst = read_table(shared_data / "sst2" / "train.csv", **LIMITS).frame
    sms = read_table(shared_data / "sms_spam" / "sms_spam.tsv", **LIMITS).frame
    assert suggest_columns(sst) == ("sentence", "sentiment")
    assert suggest_columns(sms) == ("SMS", "Label")


# --- column guesses ------------------------------------------------------------------------------

def test_suggest_columns_from_content_when_names_say_nothing():
    frame = pd.DataFrame({"id": [str(i) for i in range(8)], "b": ["x", "y"] * 4,
                          "a": [f"a fairly long sentence number {i}" for i in range(8)]})
    assert suggest_columns(frame) == ("a", "b")


def test_suggest_columns_prefers_name_hints():
    frame = pd.DataFrame({"review_text": ["good film overall"] * 3 + ["bad"] * 3,
                          "notes": ["a much longer note that is not the text at all"] * 6,
                          "category": ["pos"] * 3 + ["neg"] * 3})
    assert suggest_columns(frame) == ("review_text", "category")


def test_suggest_columns_single_column_has_no_label():
    assert suggest_columns(pd.DataFrame({"text": ["a b", "c d"]})) == ("text", None)


def test_resolve_column_is_case_insensitive_and_suggests_close_names():
    assert resolve_column("sentence", ["Sentence", "label"], "text", "f.csv") == "Sentence"
    with pytest.raises(UserError) as info:
        resolve_column("sentense", ["sentence", "sentiment"], "text", "f.csv")
    message = str(info.value)
    assert 'Did you mean "sentence"' in message and "sentence, sentiment" in message


# --- formats -------------------------------------------------------------------------------------

def test_json_array_of_records_with_mixed_label_types(tmp_path):
    records = [{"text": "one", "label": 1}, {"text": "two", "label": "1"}, {"text": "three", "label": 2.0},
               {"text": "four", "label": None}, {"text": "five", "label": True}]
    result = read_table(write(tmp_path, "d.json", json.dumps(records)), **LIMITS)
    assert result.frame["label"].tolist()[:3] == ["1", "1", "2"]
    assert pd.isna(result.frame["label"].iloc[3]) and result.frame["label"].iloc[4] == "true"


def test_json_lines_and_bad_line_number(tmp_path):
    good = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n')
    assert read_table(good, **LIMITS).frame["text"].tolist() == ["a", "b"]
    bad = write(tmp_path, "bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", \n')
    with pytest.raises(UserError, match="Line 2"):
        read_table(bad, **LIMITS)


def test_json_that_is_not_an_array_is_refused(tmp_path):
    with pytest.raises(UserError, match="not an array of records"):
        read_table(write(tmp_path, "d.json", '{"text": "a"}'), **LIMITS)
    with pytest.raises(UserError, match="not valid JSON"):
        read_table(write(tmp_path, "e.json", '[{"text": "a"'), **LIMITS)


def test_parquet_columns_become_strings(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 1, 1]}), path)
    frame = read_table(path, **LIMITS).frame
    assert frame["label"].tolist() == ["0", "1", "1"]


def test_corrupt_parquet_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Parquet"):
        read_table(write(tmp_path, "d.parquet", b"PAR1 not really"), **LIMITS)


@pytest.mark.parametrize("delimiter", [";", "|", "\t"])
def test_delimiter_is_sniffed_whatever_the_extension(tmp_path, delimiter):
    lines = [f"text{delimiter}label"] + [f"sentence, number {i}{delimiter}{'ab'[i % 2]}" for i in range(20)]
    result = read_table(write(tmp_path, "d.csv", "\n".join(lines) + "\n"), **LIMITS)
    assert result.delimiter == delimiter
    assert result.frame.shape == (20, 2) and result.frame["text"].iloc[3] == "sentence, number 3"


def test_quoted_csv_fields_with_commas_and_newlines(tmp_path):
    content = 'text,label\n"hello, world",a\n"two\nlines",b\nplain,a\n"say ""hi""",b\n'
    frame = read_table(write(tmp_path, "d.csv", content), **LIMITS).frame
    assert frame["text"].tolist() == ["hello, world", "two\nlines", "plain", 'say "hi"']


def test_stray_quotes_in_tsv_do_not_merge_rows(tmp_path):
    quote = '"'
    lines = ["label\ttext"] + [f"{'ab'[i % 2]}\t{quote if i % 7 == 0 else ''}msg {i} {quote}quoted{quote} part"
                               for i in range(50)]
    result = read_table(write(tmp_path, "d.tsv", "\n".join(lines) + "\n"), **LIMITS)
    assert len(result.frame) == 50 and not result.frame["text"].str.contains("\n").any()
    assert result.frame["text"].iloc[0] == '"msg 0 "quoted" part'


def test_ragged_rows_are_skipped_and_reported(tmp_path):
    content = "text,label\ngood one,a\ntoo,many,fields,b\ngood two,b\nlonely\ngood three,a\n"
    result = read_table(write(tmp_path, "d.csv", content), **LIMITS)
    assert result.frame["text"].tolist() == ["good one", "good two", "good three"]
    assert result.ragged_rows == 2
    assert any("2 rows without the header's 2 fields" in w for w in result.warnings)


def test_txt_with_tab_separated_label_and_text_without_header(tmp_path):
    lines = [f"{'spam' if i % 3 == 0 else 'ham'}\tmessage number {i}" for i in range(30)]
    frame = read_table(write(tmp_path, "d.txt", "\n".join(lines)), **LIMITS).frame
    assert len(frame) == 30  # the first line is data, not a header
    assert suggest_columns(frame) == ("column_2", "column_1")


def test_txt_with_header_and_fasttext_and_plain_lines(tmp_path):
    with_header = read_table(write(tmp_path, "h.txt", "label\ttext\npos\tgood\nneg\tbad\npos\tfine\n"), **LIMITS)
    assert list(with_header.frame.columns) == ["label", "text"] and len(with_header.frame) == 3
    fasttext = read_table(write(tmp_path, "f.txt", "__label__pos good film\n__label__neg bad one\n"), **LIMITS)
    assert fasttext.frame.to_dict("list") == {"text": ["good film", "bad one"], "label": ["pos", "neg"]}
    plain = read_table(write(tmp_path, "p.txt", "first line here\n\nsecond line, with a comma\n"), **LIMITS)
    assert plain.frame["text"].tolist() == ["first line here", "second line, with a comma"]


def test_very_long_field(tmp_path):
    long_text = "word " * 20_000  # 100,000 characters
    frame = read_table(write(tmp_path, "d.csv", f"text,label\n{long_text},a\nshort,b\n"), **LIMITS).frame
    assert len(frame["text"].iloc[0]) == 100_000


# --- encodings -----------------------------------------------------------------------------------

def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    result = read_table(write(tmp_path, "d.csv", "\ufefftext,label\ncafé,a\n"), **LIMITS)
    assert list(result.frame.columns) == ["text", "label"] and result.frame["text"].iloc[0] == "café"
    assert result.encoding == "utf-8-sig" and not result.warnings


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_and_without_bom(tmp_path, encoding):
    result = read_table(write(tmp_path, "d.csv", "text,label\nnaïve café,a\nüber,b\n", encoding=encoding), **LIMITS)
    assert result.frame.to_dict("list") == {"text": ["naïve café", "über"], "label": ["a", "b"]}
    assert result.encoding.startswith("utf-16")


def test_cp1252_falls_back_with_a_warning(tmp_path):
    result = read_table(write(tmp_path, "d.csv", "text,label\ncafé “quoted”,a\n", encoding="cp1252"), **LIMITS)
    assert result.frame["text"].iloc[0] == "café “quoted”"
    assert result.encoding == "cp1252" and "not valid UTF-8" in result.warnings[0]


def test_cp1252_byte_after_the_sniffed_sample(tmp_path):
    body = "".join(f"plain ascii sentence {i},a\n" for i in range(60_000))  # > 1 MB of valid UTF-8
    path = write(tmp_path, "d.csv", "text,label\n" + body + "crème brûlée,b\n", encoding="cp1252")
    result = read_table(path, **LIMITS)
    assert result.frame["text"].iloc[-1] == "crème brûlée" and len(result.frame) == 60_001
    assert any("not valid UTF-8" in w for w in result.warnings)


# --- refusals ------------------------------------------------------------------------------------

def test_binary_garbage_named_csv(tmp_path):
    garbage = random.Random(0).randbytes(20_000)
    with pytest.raises(UserError, match="does not look like a text table"):
        read_table(write(tmp_path, "data.csv", garbage), **LIMITS)


def test_unsupported_extension_lists_supported(tmp_path):
    with pytest.raises(UserError) as info:
        read_table(write(tmp_path, "data.xlsx", b"PK\x03\x04"), **LIMITS)
    assert ".csv" in str(info.value) and ".parquet" in str(info.value)


def test_file_over_size_limit_says_how_to_raise_it(tmp_path):
    path = write(tmp_path, "big.csv", "text,label\n" + "x,a\n" * 300_000)  # ~1.2 MB
    with pytest.raises(UserError) as info:
        read_table(path, max_bytes=1024 * 1024, max_rows=10**6)
    message = str(info.value)
    assert "MODELSMITH_MAX_UPLOAD_MB" in message and "1.14 MB" in message and "limit of 1 MB" in message


def test_too_many_rows(tmp_path):
    with pytest.raises(UserError, match="MODELSMITH_MAX_ROWS"):
        read_table(write(tmp_path, "d.csv", "text,label\n" + "x,a\n" * 11), max_bytes=10**6, max_rows=10)


@pytest.mark.parametrize("content, message", [("", "is empty"), ("\n\n  \n", "contains no text"),
                                              ("text,label\n", "no data rows")])
def test_empty_and_header_only(tmp_path, content, message):
    with pytest.raises(UserError, match=message):
        read_table(write(tmp_path, "d.csv", content), **LIMITS)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_table(tmp_path / "nope.csv", **LIMITS)
