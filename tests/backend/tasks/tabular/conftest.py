"""Tiny tables for the tabular tests: sklearn's bundled sets and small synthetic tables with a rule."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED_DATA

ADULT = SHARED_DATA / "adult" / "adult.csv"


def mixed_table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numbers, a category, a flag and a date; `label` is "yes" when color is red or x > 0.6."""
    rng = np.random.default_rng(seed)
    x = rng.random(rows)
    color = rng.choice(["red", "green", "blue"], rows)
    frame = pd.DataFrame({
        "x": x,
        "noise": rng.normal(size=rows),
        "color": color,
        "flag": rng.random(rows) < 0.5,
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, rows), unit="h"),
        "label": np.where((color == "red") | (x > 0.6), "yes", "no"),
    })
    # A numeric value that follows the same rule, for the regression task.
    frame["amount"] = 10 * x + 5 * (color == "red") + rng.normal(scale=0.3, size=rows)
    return frame


@pytest.fixture
def mixed():
    return mixed_table()


@pytest.fixture(scope="session")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame


@pytest.fixture(scope="session")
def wine():
    from sklearn.datasets import load_wine
    return load_wine(as_frame=True).frame


@pytest.fixture(scope="session")
def diabetes():
    from sklearn.datasets import load_diabetes
    return load_diabetes(as_frame=True).frame


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: on the shared 2-core machine, more threads wait on each other (tiny models gain nothing)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
