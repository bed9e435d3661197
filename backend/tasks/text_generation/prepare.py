"""Prepare a text-generation corpus: one text (a .txt file, or a table's text column joined by lines),
its held-out end (or a separate file) the validation part.

Called through the task (`Task.prepare`) by backend.data.store.prepare_dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from backend.data.columns import blank_texts, pick_text_columns
from backend.data.reading import column_schema, plural, read_arrow, read_details, read_text
from backend.data.report import build_report, content_hash, length_stats
from backend.data.store import IngestOptions, PreparedDataset
from backend.errors import UserError


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
        column, _ = pick_text_columns(read.table, options, path.name, need_label=False)
        texts = read.table[column]
        keep = pc.invert(blank_texts(texts))
        kept = texts.filter(keep)
        corpus = _Corpus("\n".join(kept.to_pylist()), column, read_details(read),
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
