"""Hostile files and arguments: wide files, huge numbers and ids, argparse errors; clean messages, never a trace."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import app
from backend.errors import UserError

HANG_LIMIT_S = 60  # the old code did not finish a 100,000-column record in 120 s


def _cli(capsys, *argv):
    code = app.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _in_time(function, *args, **kwargs):
    """function(*args) in a thread; fails the test instead of hanging when it runs past HANG_LIMIT_S."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args, **kwargs).result(timeout=HANG_LIMIT_S)


def test_wide_json_record_is_refused_quickly(tmp_path, settings, repo):
    """One record of 100,000 keys (1.7 MB): refused with a message naming the column limit, ingest and preview."""
    from backend.data.reading import read_table
    from backend.data.store import IngestOptions, ingest

    path = tmp_path / "wide.json"
    path.write_text(json.dumps([{f"column_{i}": "x" for i in range(100_000)}]), encoding="utf-8")
    with pytest.raises(UserError, match="100,000 columns.*limit of 2,000.*MODELSMITH_MAX_COLUMNS"):
        _in_time(ingest, path, IngestOptions(), settings=settings, repo=repo)
    with pytest.raises(UserError, match="columns"):  # the Data tab's preview reads the same way
        _in_time(read_table, path, max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows)
    assert repo.list_datasets() == []


def test_wide_csv_is_refused_and_the_limit_is_a_setting(tmp_path, settings, repo):
    from backend.data.store import IngestOptions, ingest

    path = tmp_path / "wide.csv"
    header = ["text", "label", *(f"extra_{i}" for i in range(3000))]
    rows = [",".join(header)] + [",".join([f"text number {i}", "ab"[i % 2], *["1"] * 3000]) for i in range(20)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="3,002 columns"):
        _in_time(ingest, path, IngestOptions(), settings=settings, repo=repo)
    wider = settings.model_copy(update={"max_columns": 5000})
    outcome = _in_time(ingest, path, IngestOptions(), settings=wider, repo=repo)  # within the raised limit
    assert outcome.dataset.text_column == "text" and outcome.dataset.label_column == "label"


def test_column_suggestion_is_linear_in_columns():
    """2,000 columns of a 2,000-row preview are profiled in one pass (the old per-column pandas path took ~11 s)."""
    import pandas as pd

    from backend.data.columns import suggest_columns

    frame = pd.DataFrame({f"c{i}": [f"v{j % 3}" for j in range(2000)] for i in range(1999)})
    frame["review_text"] = [f"a long review number {j}" for j in range(2000)]
    assert _in_time(suggest_columns, frame) == ("review_text", "c0")


def test_json_number_with_5000_digits_is_kept_as_text(tmp_path, capsys, home):
    """Python's int() refuses >4,300 digits (ValueError, exit 1 before): the cell keeps its digits instead."""
    path = tmp_path / "digits.json"
    big = "9" * 5000
    records = ",".join(f'{{"text": "row {i} is fine", "label": "{"ab"[i % 2]}", "n": {big}}}' for i in range(20))
    path.write_text(f"[{records}]", encoding="utf-8")
    code, result = _cli(capsys, "ingest", str(path), "--json")
    assert code == 0, result
    path.write_text("\n".join(f'{{"text": {big}, "label": "{"ab"[i % 2]}"}}' for i in range(20)), encoding="utf-8")
    jsonl = path.with_suffix(".jsonl")
    path.rename(jsonl)
    code, result = _cli(capsys, "ingest", str(jsonl), "--text-column", "text", "--json")
    assert code in (0, 2) and ("error" not in result or "Unexpected" not in result["error"]), result


@pytest.mark.parametrize("seed", [str(2**70), "-1"])
def test_out_of_range_seed_is_a_clean_error(tmp_path, capsys, home, seed):
    path = tmp_path / "toy.csv"
    path.write_text("text,label\n" + "\n".join(f"row {i},{'ab'[i % 2]}" for i in range(20)) + "\n", encoding="utf-8")
    code, result = _cli(capsys, "ingest", str(path), "--seed", seed, "--json")
    assert code == 2 and "seed" in result["error"] and "Unexpected" not in result["error"], result


def test_huge_run_id_is_not_found_not_overflow(repo):
    from storage.repository import NotFound

    for run_id in (10**30, -(10**30), 2**63):
        with pytest.raises(NotFound):
            repo.get_run(run_id)
        with pytest.raises(NotFound):
            repo.get_dataset(run_id)
        with pytest.raises(NotFound):
            repo.get_demo(run_id)


def test_playground_predict_with_huge_run_id_says_so(settings):
    """The /predict endpoint's handler: a message, not an OverflowError."""
    import gradio as gr

    from backend.services import build_services
    from ui.playground_tab import on_predict

    services = build_services(settings)
    try:
        with pytest.raises(gr.Error, match="does not exist"):
            on_predict(services, 10**30, "hello")
    finally:
        services.close()


@pytest.mark.parametrize("argv", [["ingest", "--name", "--json"], ["train", "--json"],
                                  ["predict", "--run", "x", "hi", "--json"], ["nonsense", "--json"]])
def test_argparse_errors_are_json(capsys, home, argv):
    """`ingest --name --json` used to print argparse's usage (no JSON) and exit 2."""
    code, result = _cli(capsys, *argv)
    assert code == 2 and result["error"], result
