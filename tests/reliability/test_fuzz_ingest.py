"""Property tests: ingestion of random bytes and random tables ends in a stored dataset or a UserError.

Never another exception, never a message-less error, never a change to datasets already stored
(their files and rows are hashed before and after every example), never a staging folder left.
"""

from __future__ import annotations

import hashlib
import io
import json
import string
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from backend.data.store import IngestOptions, ingest
from backend.errors import UserError
from tests.reliability.support import ingest_toy, record_figures

pytestmark = [pytest.mark.slow]  # many generated files

EXTENSIONS = [".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet"]
FUZZ = hypothesis_settings(max_examples=100, deadline=None, derandomize=True, database=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Cells mix what breaks parsers: delimiters, quotes, newlines, NUL, BOMs, surrogate-free unicode, empties.
cell_text = st.one_of(
    st.text(alphabet=string.printable, max_size=20),
    st.text(max_size=12),
    st.sampled_from(["", " ", ",", ";", "\t", '"', '""', "\n", "\r\n", "\x00", "\ufeff", "NaN", "null",
                     "None", "1e309", "-0", "[1,2]", '{"a":1}', "é", "😀", "a" * 300]),
)
header_text = st.one_of(st.text(alphabet=string.ascii_letters + "_ ,\"'\t", max_size=8),
                        st.sampled_from(["text", "label", "", "text", "Unnamed: 0", "__index_level_0__"]))


@pytest.fixture
def store(tmp_path):
    """Services on a temp home with one dataset already stored (the one that must never change)."""
    from backend.services import build_services
    from backend.settings import Settings

    services = build_services(Settings(home=tmp_path / "home", max_rows=5000, _env_file=None))
    ingest_toy(services, tmp_path, pairs=20)
    yield services
    services.close()


def _snapshot(services) -> dict:
    """Hash of every stored dataset's files and DB row, keyed by dataset id."""
    snapshot = {}
    for record in services.repo.list_datasets():
        digest = hashlib.sha256(repr(record).encode())
        for path in sorted(Path(record.path).rglob("*")):
            digest.update(path.name.encode() + path.read_bytes())
        snapshot[record.id] = digest.hexdigest()
    return snapshot


class Tally:
    """How the fuzzed inputs ended: stored, reused, or refused with a message."""

    def __init__(self) -> None:
        self.counts = Counter()

    def ingest_once(self, services, path: Path, options: IngestOptions) -> None:
        before = _snapshot(services)
        try:
            outcome = ingest(path, options, settings=services.settings, repo=services.repo)
        except UserError as exc:
            message = str(exc)
            assert message.strip() and "Traceback" not in message and len(message) < 2000, message
            self.counts["refused"] += 1
        else:
            assert outcome.dataset.rows > 0 and Path(outcome.dataset.path).is_dir()
            self.counts["reused" if outcome.reused else "stored"] += 1
        after = _snapshot(services)
        assert {k: after.get(k) for k in before} == before, "an existing dataset changed"
        leftovers = [p.name for p in services.settings.datasets_dir.iterdir() if p.name.startswith(".")]
        assert leftovers == [], leftovers


def test_random_bytes_are_stored_or_refused(store, tmp_path):
    tally = Tally()

    @FUZZ
    @given(data=st.one_of(st.binary(max_size=3000),
                          st.builds(lambda head, tail: head + tail,
                                    st.sampled_from([b"PAR1", b"\xef\xbb\xbf", b"\xff\xfe", b"{", b"[", b"text,label\n",
                                                     b"\x1f\x8b", b"PK\x03\x04", b"SQLite format 3\x00"]),
                                    st.binary(max_size=2000))),
           extension=st.sampled_from(EXTENSIONS),
           task=st.sampled_from(["text-classification", "text-generation"]))
    def check(data, extension, task):
        path = tmp_path / f"fuzz{extension}"
        path.write_bytes(data)
        tally.ingest_once(store, path, IngestOptions(task=task))

    check()
    record_figures("fuzz_random_bytes", dict(tally.counts, tried=sum(tally.counts.values())))
    assert sum(tally.counts.values()) >= 30


def _write_table(frame: pd.DataFrame, path: Path, extension: str) -> None:
    if extension == ".csv":
        frame.to_csv(path, index=False)
    elif extension == ".tsv" or extension == ".txt":
        frame.to_csv(path, index=False, sep="\t")
    elif extension == ".jsonl":
        path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in frame.to_dict("records")),
                        encoding="utf-8")
    elif extension == ".json":
        path.write_text(json.dumps(frame.to_dict("records"), ensure_ascii=False), encoding="utf-8")
    else:
        buffer = io.BytesIO()
        pq.write_table(pa.table({str(c): frame[c].astype(str).tolist() for c in frame.columns}), buffer)
        path.write_bytes(buffer.getvalue())


@st.composite
def tables(draw):
    columns = draw(st.lists(header_text, min_size=1, max_size=4))
    rows = draw(st.integers(0, 40))
    # Half the time the last column draws from a few labels and the others from wordy text, so a
    # good share of examples gets past the checks and exercises the storing path too.
    plausible = draw(st.booleans())
    label_pool = draw(st.lists(st.sampled_from(["pos", "neg", "maybe", "1", "0", "é", " "]), min_size=2, max_size=3,
                               unique=True))
    data = {}
    for index, _ in enumerate(columns):
        if plausible and index == len(columns) - 1:
            data[index] = [label_pool[i % len(label_pool)] for i in range(rows)]
        elif plausible:
            data[index] = [draw(st.text(min_size=1, max_size=30)) + f" {i}" for i in range(rows)]
        else:
            data[index] = [draw(cell_text) for _ in range(rows)]
    frame = pd.DataFrame(data)
    frame.columns = columns if len(set(columns)) == len(columns) else [f"{c}{i}" for i, c in enumerate(columns)]
    return frame


def test_random_tables_are_stored_or_refused(store, tmp_path):
    tally = Tally()

    @FUZZ
    @given(frame=tables(), extension=st.sampled_from(EXTENSIONS), pick=st.integers(0, 3),
           task=st.sampled_from(["text-classification", "text-classification", "text-generation"]),
           fraction=st.sampled_from([0.1, 0.5, 0.0, 1.0, 0.99]))
    def check(frame, extension, pick, task, fraction):
        path = tmp_path / f"table{extension}"
        _write_table(frame, path, extension)
        columns = [str(c) for c in frame.columns]
        # pick: 0 = let Modelsmith guess, 1 = first/last column, 2 = a column that does not exist, 3 = same twice
        text_column = {0: None, 1: columns[0], 2: "no such column", 3: columns[0]}[pick]
        label_column = {0: None, 1: columns[-1], 2: None, 3: columns[0]}[pick]
        tally.ingest_once(store, path, IngestOptions(task=task, text_column=text_column, label_column=label_column,
                                                     validation_fraction=fraction))

    check()
    record_figures("fuzz_random_tables", dict(tally.counts, tried=sum(tally.counts.values())))
    assert tally.counts["stored"] + tally.counts["reused"] > 0, "the generator never made a valid dataset"
