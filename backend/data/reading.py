"""Read an uploaded file into a table: format, size, encoding, delimiter, quoting, column types.

`TableRead.table` holds every column as Arrow strings, which is what the text tasks read: labels
keep their spelling ("01" stays "01") and 1 and "1" end up the same label. `typed_table(read)` holds
the same columns in their own types (integer, float, boolean, datetime, string), and
`column_schema(read)` names them: a JSON or Parquet file's own types, a CSV column's type as
inferred from its text. Nested cells (lists, objects) are kept as JSON text, with a warning.
CSV-like files are parsed by pyarrow (multi-threaded, no Python objects per cell); JSON by the
standard library; Parquet by pyarrow.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from backend.errors import UserError

log = logging.getLogger(__name__)

MAX_COLUMNS = 2_000  # Settings.max_columns' default: a wider file is refused before its columns are profiled
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "txt", ".json": "json", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet"}
SUPPORTED = ", ".join(FORMATS)
SAMPLE_BYTES = 1 << 20  # enough to see the quoting habits of a file; the SMS corpus fits whole
DELIMITERS = (",", "\t", ";", "|")
NO_DELIMITER = "\x1f"  # ASCII unit separator: never in real text, so each line is one field
FASTTEXT_PREFIX = "__label__"
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # never in text; common in binary files
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of a UTF-16 surrogate
_SURROGATE = re.compile("[\ud800-\udfff]")
# Header names that say what a column holds (compared after normalise()).
TEXT_HINTS = ("text", "sentence", "sms", "message", "review", "comment", "body", "content", "document",
              "tweet", "utterance", "question", "description", "summary", "prompt", "post", "msg", "input")
LABEL_HINTS = ("label", "labels", "class", "category", "sentiment", "target", "y", "intent", "tag", "topic",
               "polarity", "emotion", "stance", "output", "rating", "answer")
# Python's csv module refuses fields over 128 KiB by default; a single long document is legal.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


@dataclass(frozen=True)
class TableRead:
    """A file read as an Arrow table of string columns, with what was learnt on the way."""

    table: pa.Table
    format: str
    encoding: str
    delimiter: str | None = None
    quoting: bool = False
    ragged_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    typed: pa.Table | None = None  # the file's own column types (JSON, Parquet); None: infer from the text


@dataclass(frozen=True)
class ReadResult:
    """A file read into a pandas DataFrame (string columns) for previews and column mapping."""

    frame: pd.DataFrame
    warnings: list[str]
    encoding: str
    delimiter: str | None = None
    format: str = ""
    ragged_rows: int = 0


def read_table(path, *, max_bytes: int, max_rows: int, max_columns: int = MAX_COLUMNS) -> ReadResult:
    """Read a CSV/TSV/TXT/JSON/JSONL/Parquet file into a DataFrame of string columns."""
    read = read_arrow(Path(path), max_bytes=max_bytes, max_rows=max_rows, max_columns=max_columns)
    return ReadResult(frame=read.table.to_pandas(), warnings=list(read.warnings), encoding=read.encoding,
                      delimiter=read.delimiter, format=read.format, ragged_rows=read.ragged_rows)


def read_arrow(path: Path, *, max_bytes: int, max_rows: int, max_columns: int = MAX_COLUMNS) -> TableRead:
    """Read a supported file into an Arrow table of string columns; UserError on bad input."""
    fmt = check_file(path, max_bytes)
    if fmt == "parquet":
        read = _read_parquet(path)
    else:
        with path.open("rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
        complete = len(sample) == path.stat().st_size
        encoding, text, warnings = _detect_encoding(sample, path.name, complete)
        if not text.strip():
            raise UserError(f'"{path.name}" contains no text. Upload a file with a header row and '
                            "at least one data row.")
        if fmt in ("json", "jsonl"):
            read = _read_json(path, fmt, encoding, warnings, max_columns)
        else:
            read = _read_delimited(path, fmt, encoding, text, complete, warnings)
    # The parser's block buffers are free now but kept by Arrow's allocator; hand them back to the
    # OS so that they do not add to the peak memory of the steps that follow.
    pa.default_memory_pool().release_unused()
    _check_width(read.table.num_columns, max_columns, path.name)
    if read.table.num_columns == 0 or read.table.num_rows == 0:
        if read.ragged_rows:
            raise UserError(f'No row of "{path.name}" has as many fields as its header. ' + read.warnings[-1])
        raise UserError(f'"{path.name}" has a header but no data rows. Add at least one example below '
                        "the header row.")
    log.info("read %s: %d rows, %d columns, format %s, encoding %s, delimiter %r, quoting %s, %d ragged",
             path.name, read.table.num_rows, read.table.num_columns, read.format, read.encoding, read.delimiter,
             read.quoting, read.ragged_rows)
    if read.table.num_rows > max_rows:
        raise UserError(f'"{path.name}" has {read.table.num_rows:,} rows, more than the limit of {max_rows:,}. '
                        "Upload a smaller sample, or raise the limit with the environment variable "
                        "MODELSMITH_MAX_ROWS.")
    return read


# --- column types --------------------------------------------------------------------------------

COLUMN_TYPES = ("integer", "float", "boolean", "datetime", "string")
_INFERRED = (pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us"))  # tried in this order
_INFERENCE_SAMPLE = 1000  # values tried first: a text column fails here, before a whole-column cast


def column_type(arrow_type: pa.DataType) -> str:
    """The schema name of an Arrow type: integer, float, boolean, datetime or string."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type  # a categorical column: its values' type
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    return "string"


def read_details(read: TableRead) -> dict:
    """What the reader learnt about the file, for the report."""
    return {"format": read.format, "encoding": read.encoding, "delimiter": read.delimiter,
            "quoting": read.quoting, "ragged_rows": read.ragged_rows}


def typed_table(read: TableRead) -> pa.Table:
    """The file's columns in their own types (see the module docstring); names as in `read.table`."""
    if read.typed is not None:
        return read.typed
    return pa.table({name: infer_column(read.table[name]) for name in read.table.column_names})


def column_schema(read: TableRead) -> list[dict]:
    """[{"name": ..., "type": ...}] of every column of the file, in file order."""
    table = typed_table(read)
    return [{"name": name, "type": column_type(table.schema.field(name).type)} for name in table.column_names]


def infer_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as integers, floats, booleans or datetimes when every non-blank value is one
    (blanks become missing values); otherwise the column unchanged."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    values = pc.utf8_trim_whitespace(column)
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    if values.null_count == len(values):
        return column
    head = values.slice(0, _INFERENCE_SAMPLE)
    sample = head.filter(pc.is_valid(head))
    for target in _INFERRED:
        try:
            pc.cast(sample, target)
            return pc.cast(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column


def _nested_warning(names: list[str]) -> str:
    return (f"Column{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} hold{'' if len(names) > 1 else 's'} "
            "nested values (lists or objects); they are kept as JSON text. Flatten them into columns of their own "
            "to use them as numbers or categories.")


def _typed_columns(columns: dict[str, pa.ChunkedArray | pa.Array], warnings: list[str]) -> pa.Table:
    """Columns in their own types; nested ones (list, struct, map) become JSON text, with a warning."""
    typed, nested = {}, []
    for name, column in columns.items():
        if pa.types.is_nested(column.type):
            nested.append(name)
            column = pa.array([None if value is None else json.dumps(value, ensure_ascii=False, default=str)
                               for value in column.to_pylist()], type=pa.string())
        typed[name] = column
    if nested:
        warnings.append(_nested_warning(nested))
    return pa.table(typed)


def _frame_typed(frame: pd.DataFrame, warnings: list[str]) -> pa.Table:
    """JSON records' columns in their own types: a column mixing types (1 and "a") is text."""
    columns, nested = {}, []
    for name in frame.columns:
        values = frame[name].tolist()
        if any(isinstance(value, (dict, list)) for value in values):
            nested.append(str(name))
            columns[str(name)] = _strings(frame[name])
            continue
        try:
            column = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            column = _strings(frame[name])
        if pa.types.is_floating(column.type) and all(v.is_integer() for v in pc.drop_null(column).to_pylist()):
            column = column.cast(pa.int64())  # whole numbers with gaps: pandas made them floats
        elif pa.types.is_null(column.type):
            column = column.cast(pa.string())
        columns[str(name)] = column
    if nested:
        warnings.append(_nested_warning(nested))
    return pa.table(columns)


def normalise(name: str) -> str:
    """Lower-case a column name and turn separators into underscores: "Review Text" -> "review_text"."""
    return "".join(ch if ch.isalnum() else "_" for ch in str(name).strip().lower()).strip("_")


def plural(count: int, noun: str) -> str:
    """'1 row', '2 rows'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.2f}".rstrip("0").rstrip(".")


def check_file(path: Path, max_bytes: int) -> str:
    """Check existence, extension, size; return the format name."""
    if not path.is_file():
        raise UserError(f'File "{path}" does not exist. Check the path and try again.')
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        zipped = (" A .zip of image class folders is read by the image classification task: pick that task "
                  "(--task image-classification)." if path.suffix.lower() == ".zip" else "")
        raise UserError(f'"{path.name}" has an unsupported file type "{path.suffix or "(none)"}". '
                        f"Supported types: {SUPPORTED}. Save the data in one of these formats and upload it again."
                        + zipped)
    size = path.stat().st_size
    if size > max_bytes:
        suggestion = math.ceil(size / 1024 / 1024) + 1
        raise UserError(f'"{path.name}" is {_megabytes(size)} MB, larger than the upload limit of '
                        f"{_megabytes(max_bytes)} MB. Upload a smaller file, or raise the limit with the environment "
                        f"variable MODELSMITH_MAX_UPLOAD_MB (for example MODELSMITH_MAX_UPLOAD_MB={suggestion}).")
    if size == 0:
        raise UserError(f'"{path.name}" is empty. Upload a file with a header row and at least one data row.')
    return fmt


def read_text(path: Path, *, max_bytes: int) -> tuple[str, str, list[str]]:
    """Read a whole text file as one string (newlines normalised to \\n): (text, encoding, warnings)."""
    check_file(path, max_bytes)
    data = path.read_bytes()
    encoding, _, warnings = _detect_encoding(data[:SAMPLE_BYTES], path.name, len(data) <= SAMPLE_BYTES)
    text, encoding = _decode_all(data, encoding, path.name, warnings)
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding, warnings


# --- encodings -----------------------------------------------------------------------------------

def _not_text(name: str) -> UserError:
    return UserError(f'"{name}" does not look like a text table: it contains binary data. Upload a CSV, TSV, '
                     "TXT, JSON or JSONL file saved as text (or a Parquet file with a .parquet name).")


def _detect_encoding(sample: bytes, name: str, complete: bool) -> tuple[str, str, list[str]]:
    """Guess the encoding from the first bytes: (encoding, decoded sample, warnings)."""
    if sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = _utf16_without_bom(sample) or "utf-8"
    warnings: list[str] = []
    text = _decode_sample(sample, encoding, complete)
    if text is None and encoding.startswith("utf-16"):
        raise _not_text(name)
    if text is None:
        encoding = _legacy_encoding(sample)
        text = sample.decode(encoding)
        warnings.append(_legacy_warning(encoding))
    controls = len(_CONTROL.findall(text))
    if "\x00" in text or controls > 0.01 * len(text):
        raise _not_text(name)
    return encoding, text, warnings


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 without a BOM shows as ASCII with every other byte zero."""
    head = sample[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _decode_sample(sample: bytes, encoding: str, complete: bool) -> str | None:
    """Decode strictly; a sample cut inside a multi-byte character is trimmed, not rejected."""
    try:
        return sample.decode(encoding)
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(sample) - 4:
            return None
        try:
            return sample[:exc.start].decode(encoding)
        except UnicodeDecodeError:
            return None


def _legacy_encoding(data: bytes) -> str:
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"  # decodes any byte sequence


def _legacy_warning(encoding: str) -> str:
    return (f"The file is not valid UTF-8, so it was read as {encoding}. If some characters look wrong, "
            "save the file as UTF-8 and upload it again.")


def _decode_all(data: bytes, encoding: str, name: str, warnings: list[str]) -> tuple[str, str]:
    """Decode the whole file; UTF-8 that breaks after the sample falls back to cp1252/latin-1."""
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError:
        if encoding.startswith("utf-16"):
            raise _not_text(name) from None
        legacy = _legacy_encoding(data)
        warnings.append(_legacy_warning(legacy))
        return data.decode(legacy), legacy


# --- delimited text (CSV, TSV, TXT) --------------------------------------------------------------

@dataclass(frozen=True)
class _Dialect:
    delimiter: str
    quoting: bool
    header: bool
    names: list[str]


def _read_delimited(path: Path, fmt: str, encoding: str, sample: str, complete: bool,
                    warnings: list[str]) -> TableRead:
    dialect = _sniff(sample, fmt, complete)
    if dialect is None:  # a .txt with no consistent delimiter: one example per line
        text, encoding = _decode_all(path.read_bytes(), encoding, path.name, warnings)
        return TableRead(table=_lines_table(text), format=fmt, encoding=encoding, warnings=warnings)
    if encoding in ("utf-8", "utf-8-sig"):
        source = str(path)  # pyarrow reads UTF-8 (with or without BOM) straight from disk
    else:
        text, encoding = _decode_all(path.read_bytes(), encoding, path.name, warnings)
        source = io.BytesIO(text.encode("utf-8"))
    try:
        table, ragged = _parse_arrow(source, dialect, path.stat().st_size)
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc) or not isinstance(source, str):
            raise UserError(f'Could not read "{path.name}" as a table ({exc}). Check that every row has the '
                            "same number of fields and that quote characters are balanced.") from None
        data = path.read_bytes()  # valid UTF-8 at the start, not later: a legacy encoding after all
        encoding = _legacy_encoding(data)
        warnings.append(_legacy_warning(encoding))
        table, ragged = _parse_arrow(io.BytesIO(data.decode(encoding).encode("utf-8")), dialect, len(data))
    if ragged:
        example = ragged[0][:80]
        warnings.append(f"{plural(len(ragged), 'row')} without the header's {len(dialect.names)} fields "
                        f"skipped (for example: {example!r}). Quote fields that contain the delimiter, or fix "
                        "those rows.")
    return TableRead(table=table, format=fmt, encoding=encoding, delimiter=dialect.delimiter,
                     quoting=dialect.quoting, ragged_rows=len(ragged), warnings=warnings)


def _parse_arrow(source, dialect: _Dialect, size: int) -> tuple[pa.Table, list[str]]:
    """Parse with pyarrow; every column a string, rows with the wrong field count skipped and kept."""
    ragged: list[str] = []

    def on_invalid(row) -> str:
        ragged.append(row.text or "")
        return "skip"

    parse_options = pa_csv.ParseOptions(
        delimiter=dialect.delimiter, quote_char='"' if dialect.quoting else False, double_quote=True,
        escape_char=False, newlines_in_values=dialect.quoting, ignore_empty_lines=True,
        invalid_row_handler=on_invalid)
    convert_options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in dialect.names},
        strings_can_be_null=False, quoted_strings_can_be_null=False)
    # Small blocks keep memory low; a row longer than a block needs one block for the whole file.
    for block_size in (1 << 20, max(size + 1, 1 << 20)):
        read_options = pa_csv.ReadOptions(column_names=dialect.names, skip_rows=1 if dialect.header else 0,
                                          block_size=block_size)
        try:
            return pa_csv.read_csv(source, read_options, parse_options, convert_options), ragged
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block_size > 1 << 20:
                raise
            ragged.clear()
            if isinstance(source, io.BytesIO):
                source.seek(0)
    raise AssertionError("unreachable")


def _parse_sample(text: str, delimiter: str, quoting: bool, complete: bool) -> list[list[str]] | None:
    """Parse a sample with Python's csv; None when quotes are not used consistently."""
    # newline="": the csv module splits lines itself, so lone \r (old Mac) line ends parse too.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                        strict=quoting, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    records: list[list[str]] = []
    try:
        records.extend(filter(None, reader))  # skips blank lines; keeps the records before an error
    except csv.Error as exc:
        # A sample may end inside a quoted multi-line field; any other error means a stray quote,
        # which a quote-aware reader would turn into merged rows.
        if complete or "end of data" not in str(exc):
            return None
    return records


def _consistency(records: list[list[str]]) -> tuple[float, int]:
    """Share of records with the most common field count, and that count."""
    if not records:
        return 0.0, 0
    count, hits = Counter(map(len, records)).most_common(1)[0]
    return hits / len(records), count


def _sniff(sample: str, fmt: str, complete: bool) -> _Dialect | None:
    """Pick delimiter, quoting and header from a sample; None for a .txt that is not a table."""
    if not complete:
        sample = sample[: sample.rfind("\n") + 1] or sample  # whole lines only
    head = "".join(sample.splitlines(keepends=True)[:200])
    default = "\t" if fmt == "tsv" else ","
    scores = {}
    for delimiter in DELIMITERS:
        options = []
        for quoting in (True, False) if '"' in head else (False,):  # no quote: both parses agree
            records = _parse_sample(head, delimiter, quoting, complete or head == sample)
            if records:  # the first line (usually the header) must agree with the common field count
                share, count = _consistency(records)
                options.append((share, count) if len(records[0]) == count else (0.0, 0))
        scores[delimiter] = max(options, default=(0.0, 0))
    usable = [d for d, (share, count) in scores.items() if count >= 2 and share >= 0.9]
    if usable:
        delimiter = default if default in usable else max(usable, key=lambda d: scores[d])
    elif fmt == "txt":
        return None
    elif scores[default][1] >= 2:
        delimiter = default  # a messy table: the rows that do not fit are reported as ragged
    else:
        delimiter = NO_DELIMITER
    quoting, records = _choose_quoting(sample, delimiter, complete)
    if not records:  # nothing parses as rows (stray quotes, broken line ends): refuse, do not guess
        raise UserError("Found no readable rows in the file: check that quote characters are balanced and lines "
                        "end with a line break, or save it again as CSV (UTF-8) and upload that.")
    header = True if fmt != "txt" else _has_header(records)
    return _Dialect(delimiter=delimiter, quoting=quoting, header=header,
                    names=_column_names(records[0] if header else None, _consistency(records)[1]))


def _choose_quoting(sample: str, delimiter: str, complete: bool) -> tuple[bool, list[list[str]]]:
    """Use quote processing only where the file uses quotes consistently.

    A message such as `ham<TAB>"Hi" he said` would make a quote-aware reader swallow the lines up to
    the next quote and lose rows; strict parsing of the sample catches that.
    """
    plain = _parse_sample(sample, delimiter, False, complete) or []
    # Without a quote character both parses agree (the 1 MB sample costs ~20 ms a parse).
    quoted = _parse_sample(sample, delimiter, True, complete) if '"' in sample else plain
    if quoted is None or not quoted:
        return False, plain
    plain_share, plain_count = _consistency(plain)
    quoted_share, _ = _consistency(quoted)
    if plain_share == 1.0 and plain_count >= 2 and len(plain) > len(quoted):
        return False, plain  # every line already fits: quotes would only merge lines
    return (True, quoted) if quoted_share >= plain_share else (False, plain)


def _has_header(records: list[list[str]]) -> bool:
    """For .txt tables: is the first line a header (known column names, or values that never repeat)?"""
    if len(records) < 2:
        return True
    first, rest = records[0], records[1:]
    if any(normalise(value) in TEXT_HINTS + LABEL_HINTS for value in first):
        return True
    for index, value in enumerate(first):
        values = [r[index] for r in rest if len(r) > index]
        if values and len(set(values)) <= 0.5 * len(values) and value not in values:
            return True
    return False


def _column_names(header: list[str] | None, width: int) -> list[str]:
    """Clean header names: blanks get column_N, repeats get a numeric suffix."""
    raw = header if header is not None else [""] * width
    names: list[str] = []
    for index, name in enumerate(raw):
        name = name.strip().lstrip("\ufeff") or f"column_{index + 1}"
        candidate, suffix = name, 2
        while candidate in names:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        names.append(candidate)
    return names


def _lines_table(text: str) -> pa.Table:
    """One example per non-empty line; fastText lines (`__label__spam text`) give a label column too."""
    lines = [line for line in text.splitlines() if line.strip()]
    tagged = sum(line.startswith(FASTTEXT_PREFIX) for line in lines[:1000])
    if lines and tagged >= 0.9 * min(len(lines), 1000):
        labels, texts = [], []
        for line in lines:
            label, _, rest = line.partition(" ")
            labels.append(label[len(FASTTEXT_PREFIX):] if label.startswith(FASTTEXT_PREFIX) else "")
            texts.append(rest)
        return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())})
    return pa.table({"text": pa.array(lines, pa.string())})


# --- JSON, JSON Lines, Parquet -------------------------------------------------------------------

MAX_INT_DIGITS = 4000  # Python refuses int() of more than 4,300 digits (a denial-of-service guard)


def _parse_int(digits: str) -> int | str:
    """A JSON integer; one too long for int() stays its digits (cells become text anyway)."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else digits


def _check_width(columns: int, max_columns: int, name: str) -> None:
    if columns > max_columns:
        raise UserError(f'"{name}" has {columns:,} columns, more than the limit of {max_columns:,}. Keep only the '
                        "columns you need (a text and a label column are enough), or raise the limit with the "
                        "environment variable MODELSMITH_MAX_COLUMNS.")


def _count_keys(records: list, max_columns: int, name: str) -> None:
    """Refuse records with more distinct keys than `max_columns`, before any table is built from them."""
    keys: set = set()
    for record in records:
        if isinstance(record, dict):
            keys.update(record)
            if len(keys) > max_columns:
                break
    _check_width(len(keys), max_columns, name)


def _read_json(path: Path, fmt: str, encoding: str, warnings: list[str], max_columns: int = 0) -> TableRead:
    text, encoding = _decode_all(path.read_bytes(), encoding, path.name, warnings)
    text = text.lstrip("\ufeff")
    if fmt == "jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line, parse_int=_parse_int))
                except json.JSONDecodeError as exc:
                    raise UserError(f'Line {number} of "{path.name}" is not valid JSON ({exc.msg}). Each line of '
                                    'a JSON Lines file must be one object such as {"text": "...", "label": "..."}.'
                                    ) from None
                except RecursionError:
                    raise _too_deep(path.name) from None
    else:
        try:
            records = json.loads(text, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            raise UserError(f'"{path.name}" is not valid JSON ({exc.msg} at line {exc.lineno}). Upload an array of '
                            'records such as [{"text": "...", "label": "..."}].') from None
        except RecursionError:
            raise _too_deep(path.name) from None
    replaced: list[str] = []
    if _SURROGATE_ESCAPE.search(text):  # JSON may spell characters UTF-8 cannot store ("\ud800")
        try:
            records = _without_surrogates(records, replaced)
        except RecursionError:
            raise _too_deep(path.name) from None
    if replaced:
        warnings.append("Some texts held unpaired surrogate escapes (such as \\ud800), which are not characters; "
                        "they were replaced with \ufffd.")
    if not isinstance(records, list):
        raise UserError(f'"{path.name}" holds a JSON {type(records).__name__}, not an array of records. Upload an '
                        'array such as [{"text": "...", "label": "..."}], or use JSON Lines.')
    if records and all(isinstance(r, str) for r in records):
        records = [{"text": r} for r in records]
    if max_columns:
        _count_keys(records, max_columns, path.name)
    if not all(isinstance(r, dict) for r in records):
        raise UserError(f'Every record in "{path.name}" must be a JSON object such as {{"text": "...", '
                        '"label": "..."}; some are not.')
    try:  # nested cells become JSON text: the deepest ones json.loads accepted may not print again
        frame = pd.DataFrame.from_records(records)
        table = frame_to_strings(frame)
        typed = _frame_typed(frame, warnings)
    except RecursionError:
        raise _too_deep(path.name) from None
    return TableRead(table=table, format=fmt, encoding=encoding, warnings=warnings, typed=typed)


def _too_deep(name: str) -> UserError:
    return UserError(f'"{name}" nests JSON arrays or objects too deeply to be a table. Upload flat records such as '
                     '{"text": "...", "label": "..."}.')


def _without_surrogates(value, replaced: list[str]):
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD; notes each in `replaced`."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            replaced.append(value)
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, list):
        return [_without_surrogates(item, replaced) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key, replaced): _without_surrogates(item, replaced) for key, item in value.items()}
    return value


def _read_parquet(path: Path) -> TableRead:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f'"{path.name}" is not a readable Parquet file ({exc}). Export it again, or upload '
                        "CSV instead.") from None
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[str(name)] = column.cast(pa.string())  # one string type everywhere downstream
        else:
            columns[str(name)] = _strings(column.to_pandas())
    warnings: list[str] = []
    typed = _typed_columns({str(name): column for name, column in zip(table.column_names, table.columns)}, warnings)
    return TableRead(table=pa.table(columns), format="parquet", encoding="binary (parquet)", warnings=warnings,
                     typed=typed)


def frame_to_strings(frame: pd.DataFrame) -> pa.Table:
    """Turn every column of a DataFrame into Arrow strings (missing values stay null)."""
    return pa.table({str(name): _strings(frame[name]) for name in frame.columns})


def _strings(series: pd.Series) -> pa.Array:
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return pa.array(series, type=pa.string(), from_pandas=True)
    return pa.array([_to_text(value) for value in series.tolist()], type=pa.string())


def _to_text(value) -> str | None:
    """One cell as a label-friendly string: 1, 1.0 and "1" all become "1"."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
