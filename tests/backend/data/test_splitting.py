"""stratified_split: the same rows as scikit-learn's train_test_split, stratified and seeded."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from backend.data.splitting import stratified_split


def sklearn_mask(label_codes: np.ndarray, n_validation: int, seed: int) -> np.ndarray:
    _, rows = train_test_split(np.arange(label_codes.size), test_size=n_validation, stratify=label_codes,
                               random_state=seed)
    mask = np.zeros(label_codes.size, dtype=bool)
    mask[rows] = True
    return mask


@st.composite
def split_cases(draw):
    n_classes = draw(st.integers(2, 8))
    extra = draw(st.lists(st.integers(0, n_classes - 1), max_size=300))
    codes = np.array(list(range(n_classes)) * 2 + extra)  # every class at least twice, as prepare checks
    codes = codes[np.random.default_rng(draw(st.integers(0, 1000))).permutation(codes.size)]
    n_validation = draw(st.integers(n_classes, codes.size - n_classes))
    return codes, n_validation, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=300, deadline=None)
@given(split_cases())
def test_same_rows_as_scikit_learn(case):
    # Datasets split before the numpy version must keep their splits (and content hashes).
    codes, n_validation, seed = case
    assert np.array_equal(stratified_split(codes, n_validation, seed), sklearn_mask(codes, n_validation, seed))


def test_same_rows_as_scikit_learn_on_many_rows():
    codes = np.random.default_rng(1).choice(5, size=200_000, p=[0.5, 0.3, 0.1, 0.09, 0.01])
    assert np.array_equal(stratified_split(codes, 20_000, 42), sklearn_mask(codes, 20_000, 42))


def test_class_shares_are_kept_and_the_seed_decides():
    codes = np.repeat([0, 1, 2], [600, 300, 100])
    mask = stratified_split(codes, 100, seed=3)
    assert mask.sum() == 100
    assert [int(mask[codes == label].sum()) for label in range(3)] == [60, 30, 10]
    assert np.array_equal(mask, stratified_split(codes, 100, seed=3))
    assert not np.array_equal(mask, stratified_split(codes, 100, seed=4))
