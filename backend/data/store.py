"""Turn an uploaded file into a validated, split, stored dataset (no torch here).

prepare_dataset() is pure: read, pick columns, clean, check, split, report, hash. store_dataset()
writes train/validation Parquet (temp folder, then rename) and the DB row; the same content uploaded
again reuses the stored dataset. ingest() does both for the CLI and the UI.

Split order: stored splits keep the source order (the stratified split picks rows, then sorts
them back), so a separate validation file is stored exactly in file order.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.data.reading import (LABEL_HINTS, MAX_COLUMNS, TEXT_HINTS, ReadResult, TableRead, column_schema,
                                  normalise, plural, read_arrow, read_table, read_text)
from backend.data.report import (TOKEN_ESTIMATE, build_report, content_hash, duplicate_stats, length_stats,
                                 text_codes)
from backend.data.splitting import stratified_split
from backend.errors import UserError, listing, shorten
from backend.tasks.registry import DEFAULT_TASK, TASKS
from storage.records import DatasetRecord

__all__ = ["IngestOptions", "IngestOutcome", "PreparedDataset", "ReadResult", "build_report", "ingest",
           "ingest_summary", "load_split", "prepare_dataset", "read_table", "resolve_column", "store_dataset",
           "suggest_columns"]

log = logging.getLogger(__name__)

PREVIEW_ROWS = 2000  # rows looked at when guessing columns from their content
PART_BYTES = 16 << 20  # a split of more bytes than this is written as several files at once
# Each concurrent Parquet writer holds ~15-20 MB of its own (measured on 1M rows); two halve the
# write time on two cores, more would add to a big ingest's peak memory (target: under 3x the file).
MAX_WRITERS = 2
_STORE_LOCK = threading.Lock()  # one hash check + rename + DB insert at a time in this process


@dataclass(frozen=True)
class IngestOptions:
    """What the person chose on upload; None columns are guessed from names and content."""

    task: str = DEFAULT_TASK
    text_column: str | None = None
    label_column: str | None = None
    validation_fraction: float = 0.1  # used only without a separate validation file
    seed: int = 42
    name: str | None = None  # defaults to the file name without extension
    token_budget: int = 128  # texts longer than this (estimated tokens) are counted in the report
    max_columns: int = MAX_COLUMNS  # wider files are refused (Settings.max_columns)
    images_zip: str | None = None  # image classification: the zip a table's image paths point into
    # Tables (issue 15): columns the person leaves out of the inputs (label_column is the target).
    drop_columns: tuple[str, ...] = ()
    column_kinds: tuple[tuple[str, str], ...] = ()  # (column, kind) overrides of the detected kinds
    sheet: str | None = None  # the .xlsx sheet to read (None: the first)


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """A dataset ready to store: splits as DataFrames (text, label) plus its report and hash."""

    task: str
    name: str
    text_column: str
    label_column: str | None
    train: pd.DataFrame
    validation: pd.DataFrame
    labels: list[str]
    classes: dict[str, int]
    report: dict
    warnings: list[str]
    content_hash: str
    columns: list[dict] = field(default_factory=list)  # the source file's [{"name", "type"}]
    input_columns: list[str] = field(default_factory=list)  # what the task reads; [] = the text column (images: "image")

    @property
    def rows(self) -> int:
        return len(self.train) + len(self.validation)


@dataclass(frozen=True)
class IngestOutcome:
    """What ingest() did: the stored dataset, whether it already existed, and warnings to show."""

    dataset: DatasetRecord
    reused: bool
    warnings: list[str]


# --- columns -------------------------------------------------------------------------------------

def suggest_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """Guess (text column, label column) from header names and content."""
    return _suggest(frame)


def _suggest(frame: pd.DataFrame, text: str | None = None, label: str | None = None):
    profiles = {str(c): _profile(frame[c]) for c in frame.columns}
    if text is None:
        text = _pick_text(profiles, exclude={label})
    if label is None:
        label = _pick_label(profiles, exclude={text})
    return text, label


def _profile(series: pd.Series) -> tuple[float, int, int]:
    """(mean length, distinct values, non-empty values) of a column's preview.

    Plain Python over the cells: pandas' per-column overhead (about 5 ms) made a wide file take minutes.
    """
    texts = [str(value) for value in series.tolist() if not _missing(value)]
    texts = [text for text in texts if text.strip()]
    if not texts:
        return 0.0, 0, 0
    return sum(map(len, texts)) / len(texts), len(set(texts)), len(texts)


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _name_score(name: str, hints: tuple[str, ...]) -> int:
    """2 when the whole name is a hint ("SMS"), 1 when a part is ("review_text"), else 0."""
    name = normalise(name)
    if name in hints:
        return 2
    return int(any(part in hints for part in name.split("_") if len(part) > 1))


def _pick_text(profiles: dict, exclude: set) -> str | None:
    candidates = [c for c, (_, _, filled) in profiles.items() if c not in exclude and filled]
    if not candidates:
        return None
    longest = max(profiles[c][0] for c in candidates)
    hinted = [c for c in candidates if _name_score(c, TEXT_HINTS) and profiles[c][0] >= 0.25 * longest]
    plain = [c for c in candidates if _name_score(c, LABEL_HINTS) < 2] or candidates
    return max(hinted or plain, key=lambda c: (_name_score(c, TEXT_HINTS), profiles[c][0]))


def _pick_label(profiles: dict, exclude: set) -> str | None:
    candidates = [c for c, (_, _, filled) in profiles.items() if c not in exclude and filled]
    exact = [c for c in candidates if _name_score(c, LABEL_HINTS) == 2]
    if exact:  # trust a column called "label" even when it looks wrong: its errors are clearer
        return min(exact, key=lambda c: profiles[c][1])
    few = [c for c in candidates if 2 <= profiles[c][1] <= max(2, min(200, 0.5 * profiles[c][2]))]
    hinted = [c for c in few if _name_score(c, LABEL_HINTS)]
    pool = hinted or few
    return min(pool, key=lambda c: (profiles[c][1], profiles[c][0])) if pool else None


def resolve_column(name: str, columns: list[str], role: str, file_name: str) -> str:
    """The column the person asked for (case-insensitive), or a UserError naming the closest ones."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in columns], n=1, cutoff=0.5)
    hint = f' Did you mean "{shorten(next(c for c in columns if c.lower() == close[0]))}"?' if close else ""
    raise UserError(f'The {role} column "{shorten(name)}" is not in "{file_name}".{hint} Pick one of the available '
                    f"columns: {listing(columns)}.")


def _pick_columns(table: pa.Table, options: IngestOptions, file_name: str, need_label: bool):
    columns = table.column_names
    text = resolve_column(options.text_column, columns, "text", file_name) if options.text_column else None
    label = None
    if need_label and options.label_column:
        label = resolve_column(options.label_column, columns, "label", file_name)
    if text is None or (need_label and label is None):
        text, guessed = _suggest(table.slice(0, PREVIEW_ROWS).to_pandas(), text=text, label=label)
        label = guessed if need_label else None
    if text is None:
        raise UserError(f'Found no text column in "{file_name}" (columns: {listing(columns)}). Choose the '
                        "column that holds the text.")
    if need_label and label is None:
        raise UserError(f'Found no label column in "{file_name}" (columns: {listing(columns)}). Classification '
                        "needs a text column and a label column (for a .txt file: one `label<TAB>text` per line); "
                        "choose the label column, or pick the text-generation task.")
    if text == label:
        raise UserError(f'"{shorten(text)}" was chosen as both the text and the label column. '
                        "Choose two different columns.")
    return text, label


# --- classification ------------------------------------------------------------------------------

def prepare_dataset(path, options: IngestOptions, validation_path=None, *, max_bytes: int,
                    max_rows: int) -> PreparedDataset:
    """Read, check, split and describe a dataset file; UserError on anything blocking."""
    _check_options(options)
    path = Path(path)
    validation_path = Path(validation_path) if validation_path is not None else None
    return TASKS[options.task].prepare(path, options, validation_path, max_bytes, max_rows)


MAX_SEED = 2**32 - 1  # numpy's seed range; a larger one cannot seed the split


def _check_options(options: IngestOptions) -> None:
    if options.task not in TASKS:
        raise UserError(f'Unknown task "{options.task}". Choose one of: {", ".join(TASKS)}.')
    if not 0 < options.validation_fraction < 1:
        raise UserError(f"validation_fraction must be between 0 and 1 (for example 0.1), not "
                        f"{options.validation_fraction}.")
    if options.token_budget < 1:
        raise UserError(f"token_budget must be at least 1, not {options.token_budget}.")
    if not 0 <= options.seed <= MAX_SEED:
        raise UserError(f"seed must be a whole number from 0 to {MAX_SEED:,} (got {options.seed:.3g}).")


def _clean_rows(table: pa.Table, text_column: str, label_column: str) -> tuple[pa.Table, int, int]:
    """Keep rows with a non-blank text and label; labels are trimmed. Returns (table, empty, no label)."""
    text = table[text_column]
    label = pc.utf8_trim_whitespace(table[label_column])
    empty = _blank(text)
    missing = pc.fill_null(pc.equal(label, ""), True)
    n_empty = pc.sum(empty).as_py() or 0
    n_missing = pc.sum(pc.and_(missing, pc.invert(empty))).as_py() or 0
    cleaned = pa.table({"text": text, "label": label})
    if n_empty or n_missing:  # filtering copies the texts: only when something goes
        cleaned = cleaned.filter(pc.invert(pc.or_(empty, missing)))
    return cleaned, n_empty, n_missing


def _blank(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """True for missing or empty texts and texts of only whitespace (any Unicode space, so a text of
    no-break spaces counts as empty too). Four times faster than the regex ^\\s*$ on 1M rows."""
    return pc.fill_null(pc.or_(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts)), True)


def _sort_labels(names: list[str]) -> list[str]:
    """Sorted label names; all-integer labels sort as numbers (2 before 10)."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def _encode_labels(labels: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Label names in id order and the id of every row."""
    encoded = pc.dictionary_encode(labels).combine_chunks()
    names = encoded.dictionary.to_pylist()
    ordered = _sort_labels(names)
    position = {name: index for index, name in enumerate(ordered)}
    remap = np.array([position[name] for name in names], dtype=np.int64)
    return ordered, remap[encoded.indices.to_numpy(zero_copy_only=False)] if names else np.zeros(0, np.int64)


def _check_classes(labels: list[str], counts: np.ndarray, label_column: str, file_name: str) -> None:
    if len(labels) < 2:
        found = f'only the class "{shorten(labels[0])}"' if labels else "no labels"
        raise UserError(f'Found {found} in the label column "{label_column}" of "{file_name}". Classification needs '
                        "at least two different labels: check that the right label column is chosen.")
    rare = [f'"{shorten(name)}" ({plural(count, "row")})' for name, count in zip(labels, counts) if count < 2]
    if rare:
        more = f" and {len(rare) - 10:,} more" if len(rare) > 10 else ""
        raise UserError(f"Every class needs at least 2 rows (one to train on, one to validate); these have fewer: "
                        f"{', '.join(rare[:10])}{more}. Add more examples of them, remove those rows, or check that "
                        f'"{label_column}" is the label column.')


def _read_details(read: TableRead) -> dict:
    """What the reader learnt about the file, for the report."""
    return {"format": read.format, "encoding": read.encoding, "delimiter": read.delimiter,
            "quoting": read.quoting, "ragged_rows": read.ragged_rows}


def _classification_warnings(n_empty: int, n_missing: int, label_column: str, duplicates: dict,
                             long_share: float, token_budget: int) -> list[str]:
    warnings = []
    if n_empty:
        warnings.append(f"{plural(n_empty, 'row')} with an empty text dropped.")
    if n_missing:
        warnings.append(f'{plural(n_missing, "row")} with no label in column "{label_column}" dropped.')
    if duplicates["exact_duplicates"]:
        warnings.append(f"{plural(duplicates['exact_duplicates'], 'row')} repeating an earlier row exactly (same "
                        "text and label), kept.")
    if duplicates["conflicting_duplicates"]:
        warnings.append(f"{plural(duplicates['conflicting_duplicates'], 'text')} with more than one label; check "
                        "those rows, a model cannot learn both.")
    if duplicates["train_validation_overlap"]:
        warnings.append(f"{plural(duplicates['train_validation_overlap'], 'validation text')} also in the "
                        "training split, so validation scores will look better than they are. Remove duplicates for an "
                        "honest score.")
    if long_share > 0.1:
        warnings.append(f"{long_share:.0%} of texts are longer than the token budget of {token_budget} (estimated "
                        f"as {TOKEN_ESTIMATE}); training cuts off the rest. Raise the maximum length or shorten "
                        "the texts.")
    return warnings


def _split(label_codes: np.ndarray, fraction: float, seed: int, n_classes: int) -> np.ndarray:
    """Seeded stratified split (class shares kept as far as rounding allows); True marks validation rows."""
    n_rows = label_codes.size
    n_validation = min(max(round(n_rows * fraction), n_classes), n_rows - n_classes)
    return stratified_split(label_codes, n_validation, seed)


@dataclass
class _Rows:
    """Cleaned (text, label) rows of the training file, then those of the validation file, if any."""

    table: pa.Table | None  # None once _take_splits has consumed it
    train_rows: int  # how many of the rows come from the training file
    text_column: str
    label_column: str
    details: dict
    warnings: list[str]
    empty_rows: int
    missing_labels: int
    columns: list[dict] = field(default_factory=list)  # the training file's column schema


def _load_rows(path: Path, options: IngestOptions, validation_path: Path | None, max_bytes: int,
               max_rows: int) -> _Rows:
    read = read_arrow(path, max_bytes=max_bytes, max_rows=max_rows, max_columns=options.max_columns)
    text_column, label_column = _pick_columns(read.table, options, path.name, need_label=True)
    train, empty_rows, missing_labels = _clean_rows(read.table, text_column, label_column)
    if train.num_rows == 0:
        raise UserError(f'"{path.name}" has no rows with both a text (column "{text_column}") and a label (column '
                        f'"{label_column}"). Fill them in, or choose other columns.')
    rows = _Rows(train, train.num_rows, text_column, label_column, _read_details(read), list(read.warnings),
                 empty_rows, missing_labels, column_schema(read))
    if validation_path is not None:
        held_out = read_arrow(validation_path, max_bytes=max_bytes, max_rows=max_rows,
                              max_columns=options.max_columns)
        names = held_out.table.column_names
        validation, empty_rows, missing_labels = _clean_rows(
            held_out.table, resolve_column(text_column, names, "text", validation_path.name),
            resolve_column(label_column, names, "label", validation_path.name))
        if validation.num_rows == 0:
            raise UserError(f'"{validation_path.name}" has no rows with both a text and a label. Fill them in, or '
                            "leave the validation file out to split off part of the training file.")
        rows.table = pa.concat_tables([train, validation])
        rows.warnings += [f"Validation file: {w}" for w in held_out.warnings]
        rows.empty_rows += empty_rows
        rows.missing_labels += missing_labels
    return rows


def _check_validation_labels(label_codes: np.ndarray, labels: list[str], train_rows: int) -> None:
    """Every label of the validation file must occur in the training file."""
    unseen = np.setdiff1d(label_codes[train_rows:], label_codes[:train_rows])
    if unseen.size:
        raise UserError("The validation file has labels that the training file lacks: "
                        f"{', '.join(labels[i] for i in unseen[:10])}. Add training examples for them.")


def _take_splits(rows: _Rows, is_validation: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """Filter rows into (train, validation) chunk by chunk, dropping each source chunk once it is
    copied, so that memory holds about one copy of the texts rather than two."""
    table, rows.table = rows.table, None
    columns = {name: list(table[name].chunks) for name in table.column_names}
    del table
    sides: dict[bool, dict[str, pa.ChunkedArray]] = {False: {}, True: {}}
    for name, chunks in columns.items():
        pieces: dict[bool, list[pa.Array]] = {False: [], True: []}
        start = 0
        for index in range(len(chunks)):
            chunk, chunks[index] = chunks[index], None
            mask = is_validation[start: start + len(chunk)]
            start += len(chunk)
            pieces[True].append(chunk.filter(pa.array(mask)))
            pieces[False].append(chunk.filter(pa.array(~mask)))
        for side, parts in pieces.items():
            sides[side][name] = pa.chunked_array(parts, type=pa.string())
    return pa.table(sides[False]), pa.table(sides[True])


def prepare_classification(path: Path, options: IngestOptions, validation_path: Path | None,
                           max_bytes: int, max_rows: int) -> PreparedDataset:
    """A text-classification dataset: text and label columns, cleaned, split stratified by label."""
    rows = _load_rows(path, options, validation_path, max_bytes, max_rows)
    labels, label_codes = _encode_labels(rows.table["label"])
    counts = np.bincount(label_codes, minlength=len(labels))
    if validation_path is not None:
        _check_validation_labels(label_codes, labels, rows.train_rows)
    _check_classes(labels, counts, rows.label_column, path.name)
    if validation_path is not None:  # no shuffling: both files keep their order
        is_validation = np.arange(label_codes.size) >= rows.train_rows
    else:
        is_validation = _split(label_codes, options.validation_fraction, options.seed, len(labels))
    texts = rows.table["text"]
    # pyarrow kernels and most numpy loops release the GIL, so the two scans of the texts run side
    # by side: one in a worker, one here. (A second worker would hold on to its own freed memory,
    # adding ~30 MB to the peak; the split stays out of it for the same reason.)
    with ThreadPoolExecutor(max_workers=1) as pool:
        lengths = pool.submit(length_stats, texts, options.token_budget)
        codes = text_codes(texts)
        duplicates = duplicate_stats(codes, label_codes, len(labels), is_validation)
        text_length, long_share = lengths.result()
    del texts, codes, lengths
    train, validation = _take_splits(rows, is_validation)
    warnings = rows.warnings + _classification_warnings(rows.empty_rows, rows.missing_labels, rows.label_column,
                                                        duplicates, long_share, options.token_budget)
    digest = content_hash(
        {"task": options.task, "text_column": rows.text_column, "label_column": rows.label_column,
         "labels": labels, "split": "file" if validation_path else [options.validation_fraction, options.seed]},
        [train["text"], label_codes[~is_validation], validation["text"], label_codes[is_validation]])
    classes = {name: int(count) for name, count in zip(labels, counts)}
    report = build_report(
        task=options.task, source=path.name, **rows.details, rows=int(label_codes.size), train_rows=train.num_rows,
        validation_rows=validation.num_rows, validation_source="file" if validation_path else "split",
        text_column=rows.text_column, label_column=rows.label_column, token_budget=options.token_budget,
        warnings=warnings, empty_rows_dropped=rows.empty_rows, nan_labels_dropped=rows.missing_labels,
        classes=classes, labels=labels, text_length=text_length, long_text_share=long_share,
        validation_fraction=options.validation_fraction, seed=options.seed,
        source_rows=int(label_codes.size) + rows.empty_rows + rows.missing_labels, **duplicates)
    return PreparedDataset(task=options.task, name=options.name or path.stem, text_column=rows.text_column,
                           label_column=rows.label_column, train=train.to_pandas(), validation=validation.to_pandas(),
                           labels=labels, classes=classes, report=report, warnings=warnings, content_hash=digest,
                           columns=rows.columns)


# --- text generation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Corpus:
    text: str
    text_column: str
    details: dict
    empty_rows_dropped: int
    warnings: list[str]
    columns: list[dict]


def _read_corpus(path: Path, options: IngestOptions, max_bytes: int, max_rows: int) -> _Corpus:
    """A .txt file whole, or the non-empty texts of a table's text column joined with newlines."""
    if path.suffix.lower() == ".txt":
        text, encoding, warnings = read_text(path, max_bytes=max_bytes)
        details = {"format": "txt", "encoding": encoding, "delimiter": None, "quoting": False, "ragged_rows": 0}
        corpus = _Corpus(text, "text", details, 0, warnings, [{"name": "text", "type": "string"}])
    else:
        read = read_arrow(path, max_bytes=max_bytes, max_rows=max_rows, max_columns=options.max_columns)
        column, _ = _pick_columns(read.table, options, path.name, need_label=False)
        texts = read.table[column]
        keep = pc.invert(_blank(texts))
        kept = texts.filter(keep)
        corpus = _Corpus("\n".join(kept.to_pylist()), column, _read_details(read),
                         len(texts) - len(kept), list(read.warnings), column_schema(read))
    if not corpus.text.strip():
        raise UserError(f'"{path.name}" contains no text. Upload a file with the text to learn from.')
    return corpus


def _split_corpus(text: str, fraction: float) -> tuple[str, str]:
    """Split by position (the tail is validation), at a line break when one is near."""
    if len(text) < 2:
        raise UserError("The text is too short to split into training and validation parts. Upload more text.")
    cut = int(len(text) * (1 - fraction))
    newline = text.rfind("\n", 0, cut)
    if newline >= cut // 2:
        cut = newline + 1
    cut = min(max(cut, 1), len(text) - 1)
    return text[:cut], text[cut:]


def _lines(text: str) -> list[str]:
    pieces = text.split("\n")
    return pieces[:-1] if text.endswith("\n") else pieces


def prepare_generation(path: Path, options: IngestOptions, validation_path: Path | None,
                       max_bytes: int, max_rows: int) -> PreparedDataset:
    """A text-generation corpus: one text, its held-out end the validation part."""
    corpus = _read_corpus(path, options, max_bytes, max_rows)
    warnings = list(corpus.warnings)
    if validation_path is not None:
        held_out = _read_corpus(validation_path, options, max_bytes, max_rows)
        warnings += [f"Validation file: {w}" for w in held_out.warnings]
        train_text, validation_text = corpus.text, held_out.text
    else:
        train_text, validation_text = _split_corpus(corpus.text, options.validation_fraction)
    if corpus.empty_rows_dropped:
        warnings.append(f"{plural(corpus.empty_rows_dropped, 'row')} with an empty text left out.")
    lines = pa.array(_lines(train_text) + _lines(validation_text), pa.string())
    text_length, long_share = length_stats(lines, options.token_budget)
    train = pa.array([train_text], pa.string())
    validation = pa.array([validation_text], pa.string())
    digest = content_hash({"task": options.task, "text_column": corpus.text_column,
                           "split": "file" if validation_path else options.validation_fraction},
                          [train, validation])
    report = build_report(
        task=options.task, source=path.name, **corpus.details, rows=2, train_rows=1, validation_rows=1,
        validation_source="file" if validation_path else "split", text_column=corpus.text_column,
        label_column=None, token_budget=options.token_budget, warnings=warnings,
        empty_rows_dropped=corpus.empty_rows_dropped, text_length=text_length, long_text_share=long_share,
        source_rows=len(lines), characters=len(train_text) + len(validation_text), train_characters=len(train_text),
        validation_characters=len(validation_text), lines=len(lines),
        distinct_characters=len(set(train_text) | set(validation_text)),
        validation_fraction=options.validation_fraction)
    return PreparedDataset(task=options.task, name=options.name or path.stem, text_column=corpus.text_column,
                           label_column=None, train=pa.table({"text": train}).to_pandas(),
                           validation=pa.table({"text": validation}).to_pandas(), labels=[], classes={},
                           report=report, warnings=warnings, content_hash=digest, columns=corpus.columns)


# --- storage -------------------------------------------------------------------------------------

def store_dataset(prepared: PreparedDataset, repo, datasets_dir) -> DatasetRecord:
    """Write the splits as Parquet and add the DB row; same content hash -> the existing record."""
    record, _ = _store(prepared, repo, Path(datasets_dir))
    return record


def _store(prepared: PreparedDataset, repo, datasets_dir: Path):
    """(record, reused). Writes to a temp folder, renames it into place, then inserts the row;
    a failure at any step removes what this call wrote and leaves stored datasets untouched."""
    with _STORE_LOCK:
        existing = repo.find_dataset_by_hash(prepared.content_hash)
        if existing is not None:
            return existing, True
        datasets_dir.mkdir(parents=True, exist_ok=True)
        final = (datasets_dir / prepared.content_hash[:16]).resolve()
        staging = Path(tempfile.mkdtemp(prefix=".ingest-", dir=datasets_dir))
        try:
            _write_splits({"train": prepared.train, "validation": prepared.validation}, staging)
            if final.exists():  # left by a crash between rename and insert: no record points at it
                shutil.rmtree(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            record = repo.add_dataset(
                name=prepared.name, task=prepared.task, content_hash=prepared.content_hash, path=str(final),
                text_column=prepared.text_column, label_column=prepared.label_column, rows=prepared.rows,
                train_rows=len(prepared.train), validation_rows=len(prepared.validation), labels=prepared.labels,
                classes=prepared.classes, report=prepared.report, columns=prepared.columns,
                input_columns=prepared.input_columns or [prepared.text_column], target_column=prepared.label_column)
        except BaseException:
            raced = _find_quietly(repo, prepared.content_hash)
            if raced is not None and Path(raced.path) == final:  # another process stored it meanwhile
                return raced, True
            shutil.rmtree(final, ignore_errors=True)
            raise
    log.info("stored dataset %d (%s) in %s", record.id, record.name, final)
    return record, False


def _write_splits(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write each split as Parquet, a big one as up to MAX_WRITERS part files written at once:
    pyarrow compresses a file on one thread, and compression is most of the time of a write."""
    writers = min(_cores(), MAX_WRITERS)
    # pyarrow's allocator keeps memory freed while preparing; handing it back first keeps the
    # writers' own buffers from adding to it (measured: the write's peak fell below preparing's).
    pa.default_memory_pool().release_unused()
    jobs = []
    for split, frame in frames.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        parts = max(1, min(writers, table.nbytes // PART_BYTES, table.num_rows))  # a corpus is one row
        rows = -(-table.num_rows // parts)  # rows per part, rounded up
        jobs += [(table.slice(index * rows, rows), _part_path(folder, split, index)) for index in range(parts)]
    if writers == 1:
        for table, path in jobs:
            pq.write_table(table, path)
        return
    jobs.sort(key=lambda job: -job[0].nbytes)  # biggest first, so the last to start is a small one
    with ThreadPoolExecutor(max_workers=writers - 1) as pool:  # this thread is the last writer
        others = [pool.submit(pq.write_table, table, path) for table, path in jobs[1:]]
        pq.write_table(*jobs[0])
        for done in others:
            done.result()  # re-raises a failed write


def _cores() -> int:
    """CPU cores this process may use (the affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _part_path(folder: Path, split: str, index: int) -> Path:
    """train.parquet, then train.1.parquet, train.2.parquet, ... (datasets stored before parts
    existed have just the first, so they load unchanged)."""
    return folder / (f"{split}.parquet" if index == 0 else f"{split}.{index}.parquet")


def _find_quietly(repo, digest: str):
    try:
        return repo.find_dataset_by_hash(digest)
    except Exception:  # the DB is failing: the caller re-raises the original error
        return None


def load_split(record: DatasetRecord, split: Literal["train", "validation"]) -> pd.DataFrame:
    """The stored train or validation split of a dataset as a DataFrame (text[, label])."""
    if split not in ("train", "validation"):
        raise UserError(f'Unknown split "{split}"; use "train" or "validation".')
    folder = Path(record.path)
    first = _part_path(folder, split, 0)
    if not first.is_file():
        raise UserError(f'The files of dataset "{record.name}" are missing ({first}). Upload the dataset again.')
    parts = [first]
    while (following := _part_path(folder, split, len(parts))).is_file():
        parts.append(following)
    frame = pd.read_parquet(parts if len(parts) > 1 else first)  # a list of parts is read in the order given
    expected = record.train_rows if split == "train" else record.validation_rows
    if len(frame) != expected:  # a part file lost or left over: never train on part of the data
        raise UserError(f'The files of dataset "{record.name}" are incomplete ({len(frame):,} {split} rows in '
                        f"{folder}, {expected:,} stored). Upload the dataset again.")
    return frame


# --- one call for the CLI and the UI -------------------------------------------------------------

def ingest(path, options: IngestOptions, *, validation_path=None, settings, repo) -> IngestOutcome:
    """Prepare and store a dataset file; reuses the stored dataset when the content is the same."""
    options = replace(options, max_columns=settings.max_columns)
    prepared = prepare_dataset(path, options, validation_path, max_bytes=settings.max_upload_bytes,
                               max_rows=settings.max_rows)
    record, reused = _store(prepared, repo, Path(settings.datasets_dir))
    warnings = list(prepared.warnings)
    if reused:
        warnings.append(f'This data was uploaded before as dataset {record.id} ("{record.name}"); '
                        "that dataset is reused.")
    return IngestOutcome(dataset=record, reused=reused, warnings=warnings)


def ingest_summary(outcome: IngestOutcome) -> dict:
    """The JSON summary the CLI prints after an ingest."""
    record = outcome.dataset
    return {"dataset_id": record.id, "name": record.name, "task": record.task, "rows": record.rows,
            "train_rows": record.train_rows, "validation_rows": record.validation_rows,
            "text_column": record.text_column, "label_column": record.label_column, "columns": list(record.columns),
            "classes": dict(record.classes), "labels": list(record.labels), "warnings": list(outcome.warnings),
            "reused": outcome.reused}


def delete_dataset(repo, dataset_id: int) -> None:
    """Delete a dataset's row, then its files; refused (InUse) while runs use it, so nothing is lost."""
    record = repo.get_dataset(dataset_id)
    repo.delete_dataset(dataset_id)  # raises InUse before anything is removed
    shutil.rmtree(record.path, ignore_errors=True)
