"""Make a table safe to open in a spreadsheet: no cell of a download can run as a formula.

OWASP's advice for CSV export: a cell that starts with = + - @ tab or carriage return is a formula
to Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)`, `@SUM(...)`, DDE), so it gets a leading
single quote, which shows it as text. A column whose every cell is a number (such as -0.5) stays
as it is: its minus signs are numbers, not formulas.
"""

from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """'=1+1' -> "'=1+1"; anything else unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _is_numeric(column: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return True
    filled = column.dropna().astype(str).str.strip()
    filled = filled[filled != ""]
    return not filled.empty and bool(pd.to_numeric(filled, errors="coerce").notna().all())


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot start a formula."""
    out = frame.copy()
    for position in range(out.shape[1]):  # by position: names may repeat
        column = out.iloc[:, position]
        if not _is_numeric(column):
            out.isetitem(position, column.map(neutralise_cell))
    out.columns = [neutralise_cell(str(name)) for name in out.columns]
    return out
