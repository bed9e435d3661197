"""Word counts, fingerprints and text codes computed from Arrow buffers agree with plain Python."""

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backend.data.report as report
import backend.data.text_bytes as text_bytes
from backend.data.report import length_stats, take_rows, text_codes
from backend.data.text_bytes import fingerprints, word_counts

WORD = re.compile(r"[^ \t\n\v\f\r]+")  # \S+ over ASCII whitespace, as the tokenizers pre-split
# Few characters, so that texts repeat and share prefixes; whitespace of every kind, control
# characters that are not whitespace, multi-byte characters.
TEXTS = st.lists(st.text(alphabet="ab \t\n\v\f\ré\u00a0€😀\x00\x01\x1f", max_size=40), max_size=60)


def layouts(texts: list[str]) -> list:
    """The same texts as one array, as sliced chunks (non-zero offsets) and as large_string."""
    whole = pa.array(texts, pa.string())
    half = len(texts) // 2
    padded = pa.array(["pad"] + texts + ["pad"], pa.string())
    return [whole, pa.chunked_array([whole.slice(0, half), whole.slice(half)], pa.string()),
            padded.slice(1, len(texts)), pa.array(texts, pa.large_string())]


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(text_bytes, "WINDOW_ROWS", 7)  # many windows, so their edges are tested


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_word_counts_match_the_regex(texts):
    expected = [len(WORD.findall(text)) for text in texts]
    for array in layouts(texts):
        assert word_counts(array).tolist() == expected


def test_word_counts_of_edge_cases():
    texts = ["", " ", "a", " a ", "a  b\tc\nd\ve\ff\rg", "é b", "\u00a0x y", "  ", "word " * 3]
    assert word_counts(pa.array(texts)).tolist() == [0, 0, 1, 1, 7, 2, 2, 0, 3]


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_equal_texts_get_equal_fingerprints(texts):
    for array in layouts(texts):
        keys = fingerprints(array)
        first = {}
        for text, key in zip(texts, keys.tolist()):
            assert first.setdefault(text, key) == key


def same_partition(codes: np.ndarray, texts: list[str]) -> bool:
    """Equal codes exactly for equal texts."""
    by_text, by_code = {}, {}
    for text, code in zip(texts, codes.tolist()):
        if by_text.setdefault(text, code) != code or by_code.setdefault(code, text) != text:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_text_codes_are_equal_exactly_for_equal_texts(texts):
    for array in layouts(texts):
        assert same_partition(text_codes(array), texts)


def test_texts_alike_in_every_sampled_byte_are_still_told_apart(monkeypatch):
    # Same length, same bytes in every sampled window (0-15, 23-30, 46-53, 69-76, 92-99); not byte 20.
    alike = ["a" * 100, "a" * 20 + "b" + "a" * 79, "a" * 100]
    assert len(set(fingerprints(pa.array(alike)).tolist())) == 1
    texts = [f"other text {i % 40}" for i in range(200)] + alike
    calls, exact = [], report._rank_codes
    monkeypatch.setattr(report, "_rank_codes", lambda array: calls.append(len(array)) or exact(array))
    for array in layouts(texts):
        assert same_partition(text_codes(array), texts)
    assert calls == [3, 3, 3, 3]  # only the rows of the shared fingerprint were ranked
    calls.clear()
    monkeypatch.setattr(report, "_MOST_RANKED", 2)  # too many to copy: the whole column is ranked
    assert same_partition(text_codes(pa.array(texts)), texts)
    assert calls == [len(texts)]


def test_duplicates_are_confirmed_without_the_slow_rank(monkeypatch):
    # The fast path must hold for ordinary data with repeats, or the speed-up silently goes.
    def no_rank(array):
        raise AssertionError("fell back to the rank")

    monkeypatch.setattr(report, "_rank_codes", no_rank)
    texts = [f"message number {i % 500} with some words" for i in range(5_000)]
    for array in layouts(texts):
        assert same_partition(text_codes(array), texts)


def test_long_share_matches_the_token_estimate():
    budget = 16  # ceil(12 x 1.3) = 16 fits, ceil(13 x 1.3) = 17 does not
    texts = pa.array([" ".join(["w"] * n) for n in (12, 13, 1, 40)])
    stats, long_share = length_stats(texts, budget)
    assert long_share == 0.5
    assert stats["words"]["max"] == 40 and stats["words"]["min"] == 1
    for budget in range(1, 400):
        words = np.arange(0, 1000)
        assert np.array_equal(words > report._most_words(budget), np.ceil(words * 1.3) > budget)


@settings(max_examples=100, deadline=None)
@given(TEXTS, st.data())
def test_take_rows_matches_list_indexing(texts, data):
    rows = data.draw(st.lists(st.integers(0, len(texts) - 1), max_size=30)) if texts else []
    empty = pa.array([], pa.string())
    for array in layouts(texts) + [pa.chunked_array([empty, pa.array(texts, pa.string()), empty], pa.string())]:
        assert take_rows(array, np.array(rows, dtype=np.int64)).to_pylist() == [texts[row] for row in rows]
