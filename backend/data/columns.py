"""Which columns of an uploaded table hold the text and the label: named by the person, or guessed.

Shared by the tasks that read texts from a table (text classification and generation) and by
batch prediction; the guesses look at header names first (TEXT_HINTS, LABEL_HINTS), then content.
"""

from __future__ import annotations

import difflib

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backend.data.reading import LABEL_HINTS, TEXT_HINTS, normalise
from backend.errors import UserError, listing, shorten

PREVIEW_ROWS = 2000  # rows looked at when guessing columns from their content


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


def pick_text_columns(table: pa.Table, options, file_name: str, need_label: bool) -> tuple[str, str | None]:
    """The text column (and, when `need_label`, the label column) of an upload: the ones the person
    named in `options` (IngestOptions), else guessed from names and content; UserError when none fits."""
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


def blank_texts(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """True for missing or empty texts and texts of only whitespace (any Unicode space, so a text of
    no-break spaces counts as empty too). Four times faster than the regex ^\\s*$ on 1M rows."""
    return pc.fill_null(pc.or_(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts)), True)
