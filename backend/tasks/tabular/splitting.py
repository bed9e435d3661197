"""Carve a seeded validation split from a table (stratified by class for classification)."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from backend.tasks.tabular.columns import TableSpec
from backend.tasks.tabular.preprocessing import category_keys


def split_table(frame: pd.DataFrame, spec: TableSpec, validation_share: float = 0.2,
                seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) rows; rows without a target are left out of both."""
    known = frame[frame[spec.target].notna()]
    stratify = category_keys(known[spec.target], "categorical") if spec.task == "classification" else None
    train, validation = train_test_split(known, test_size=validation_share, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), validation.reset_index(drop=True)
