"""Read a table upload (CSV/TSV, xlsx, Parquet, JSON/JSONL) into a pandas DataFrame with types kept.

Unlike backend.data.reading (which keeps every column as a string, for text tasks), a table keeps its
numbers, booleans and dates: pandas infers them. Missing-value markers common in spreadsheets and
UCI files (`?`, `NA`, `N/A`, `null`, empty) become real missing values, and the space that some
files put after every delimiter ("39, State-gov") is stripped by the parser.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from backend.errors import UserError

log = logging.getLogger(__name__)

# pandas' default markers already include "", "NA", "N/A", "null", "NaN"; "?" is UCI's habit.
MISSING_MARKERS = ["?", "NA", "N/A", "n/a", "null", "NULL", "None", ""]
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".xlsx": "xlsx", ".parquet": "parquet",
                 ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",\t;|"
# Tried in order: UTF-8 (with or without BOM) first, then the usual Windows spreadsheet export.
_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def list_sheets(path: str | Path) -> list[str]:
    """Names of the sheets of an .xlsx workbook, in order (for a sheet picker)."""
    try:
        return list(pd.ExcelFile(path, engine="openpyxl").sheet_names)
    except Exception as exc:  # openpyxl raises several types for a damaged or non-xlsx file
        raise UserError(f"{Path(path).name} is not a readable .xlsx workbook ({exc}). "
                        "Save it again from Excel as .xlsx, or export the sheet as CSV.") from exc


def read_table(path: str | Path, sheet: str | None = None) -> pd.DataFrame:
    """Read a table file into a DataFrame; `sheet` picks an .xlsx sheet by name (default: the first)."""
    path = Path(path)
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path.name}: tables can be {', '.join(sorted(TABLE_FORMATS))} files; "
                        "save the table in one of these formats.")
    if not path.is_file():
        raise UserError(f"{path} does not exist; check the path.")
    if kind in ("csv", "tsv"):
        frame = _read_delimited(path, "\t" if kind == "tsv" else None)
    elif kind == "xlsx":
        frame = _read_xlsx(path, sheet)
    elif kind == "parquet":
        frame = _read_or_explain(lambda: pd.read_parquet(path), path, "Parquet")
    else:
        frame = _read_or_explain(lambda: pd.read_json(path, lines=kind == "jsonl"), path,
                                 "JSON Lines (one object per line)" if kind == "jsonl" else "JSON (a list of objects)")
    frame.columns = [str(name).strip() for name in frame.columns]
    if frame.empty or len(frame.columns) == 0:
        raise UserError(f"{path.name} holds no rows; a table needs a header line and at least one row.")
    _refuse_duplicate_names(frame, path)
    log.info("read %s: %d rows x %d columns", path.name, len(frame), len(frame.columns))
    return frame


def _read_delimited(path: Path, delimiter: str | None) -> pd.DataFrame:
    raw = path.read_bytes()[:_SNIFF_BYTES]
    for encoding in _ENCODINGS:
        try:
            sample = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if delimiter is None:
        delimiter = _sniff_delimiter(sample)
    return _read_or_explain(
        lambda: pd.read_csv(path, sep=delimiter, encoding=encoding, na_values=MISSING_MARKERS,
                            skipinitialspace=True, low_memory=False),
        path, "delimited text")


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff("\n".join(sample.splitlines()[:20]), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # A one-column file, or a sample the sniffer cannot decide on: the delimiter seen most
        # often in the header line wins, comma when none is.
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _read_xlsx(path: Path, sheet: str | None) -> pd.DataFrame:
    sheets = list_sheets(path)
    if sheet is not None and sheet not in sheets:
        raise UserError(f"{path.name} has no sheet named {sheet!r}; its sheets are {', '.join(sheets)}.")
    return _read_or_explain(lambda: pd.read_excel(path, sheet_name=sheet if sheet is not None else 0,
                                                  engine="openpyxl", na_values=MISSING_MARKERS),
                            path, ".xlsx")


def _read_or_explain(read, path: Path, what: str) -> pd.DataFrame:
    try:
        return read()
    except UserError:
        raise
    except Exception as exc:  # parsers raise many types; the user needs one clear message
        raise UserError(f"Could not read {path.name} as {what}: {exc}. "
                        "Check that the file is complete and in that format.") from exc


def _refuse_duplicate_names(frame: pd.DataFrame, path: Path) -> None:
    seen: set[str] = set()
    for name in frame.columns:
        if name in seen:
            raise UserError(f"{path.name} has two columns named {name!r}; rename one and upload again.")
        seen.add(name)
