"""Carve a seeded validation split from a table (stratified by class for classification)."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from backend.errors import UserError
from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.preprocessing import category_keys


def split_table(frame: pd.DataFrame, spec: TableSpec, validation_share: float = 0.2,
                seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) rows; rows without a target are left out of both."""
    known = frame[frame[spec.target].notna()]
    stratify = category_keys(known[spec.target], "categorical") if spec.task == "classification" else None
    try:
        train, validation = train_test_split(known, test_size=validation_share, random_state=seed, stratify=stratify)
    except ValueError as exc:   # too few rows, or too few per class, for this validation share
        raise UserError(f"Cannot carve a {validation_share:.0%} validation split from {len(known)} rows with a "
                        f"{spec.target!r} value ({exc}). Add rows (at least 2 per class, and enough that the "
                        "validation split holds one of each), or upload a validation file.") from exc
    return train.reset_index(drop=True), validation.reset_index(drop=True)
