"""Rows given as JSON text (the CLI's `predict --json-rows`): checked once, before any model loads."""

from __future__ import annotations

import json

from backend.errors import UserError

MAX_JSON_ROWS = 10_000


def parse_json_rows(text: str) -> list[dict]:
    """Rows from JSON text: one object, or a list of objects; UserError saying what is wrong otherwise."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"The rows are not valid JSON ({exc.msg} at character {exc.pos}). Write them like "
                        '[{"age": 39, "workclass": "State-gov"}].') from None
    rows = [rows] if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise UserError('Give the rows as a JSON object or a list of objects, e.g. [{"age": 39, "workclass": '
                        '"State-gov"}].')
    if len(rows) > MAX_JSON_ROWS:
        raise UserError(f"{len(rows):,} rows given; at most {MAX_JSON_ROWS:,} at once. Use --file for more.")
    return rows
