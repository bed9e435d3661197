"""Prepare a text-classification dataset: text and label columns, cleaned, checked, split stratified by label.

Called through the task (`Task.prepare`) by backend.data.store.prepare_dataset; the stored splits
keep the source order (the stratified split picks rows, then sorts them back), so a separate
validation file is stored exactly in file order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend.data.columns import blank_texts, pick_text_columns, resolve_column
from backend.data.reading import column_schema, plural, read_arrow, read_details
from backend.data.report import TOKEN_ESTIMATE, build_report, content_hash, duplicate_stats, length_stats, text_codes
from backend.data.splitting import stratified_split
from backend.data.store import IngestOptions, PreparedDataset
from backend.errors import UserError, shorten


def _clean_rows(table: pa.Table, text_column: str, label_column: str) -> tuple[pa.Table, int, int]:
    """Keep rows with a non-blank text and label; labels are trimmed. Returns (table, empty, no label)."""
    text = table[text_column]
    label = pc.utf8_trim_whitespace(table[label_column])
    empty = blank_texts(text)
    missing = pc.fill_null(pc.equal(label, ""), True)
    n_empty = pc.sum(empty).as_py() or 0
    n_missing = pc.sum(pc.and_(missing, pc.invert(empty))).as_py() or 0
    cleaned = pa.table({"text": text, "label": label})
    if n_empty or n_missing:  # filtering copies the texts: only when something goes
        cleaned = cleaned.filter(pc.invert(pc.or_(empty, missing)))
    return cleaned, n_empty, n_missing


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
    text_column, label_column = pick_text_columns(read.table, options, path.name, need_label=True)
    train, empty_rows, missing_labels = _clean_rows(read.table, text_column, label_column)
    if train.num_rows == 0:
        raise UserError(f'"{path.name}" has no rows with both a text (column "{text_column}") and a label (column '
                        f'"{label_column}"). Fill them in, or choose other columns.')
    rows = _Rows(train, train.num_rows, text_column, label_column, read_details(read), list(read.warnings),
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
