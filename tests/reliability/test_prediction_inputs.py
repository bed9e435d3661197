"""Awkward prediction inputs are answered or refused cleanly: the predictor, the handler, the CLI, the API.

Empty text, 1 MB of text, control characters, lone surrogates and (on the command line) bytes that
are not UTF-8. "Cleanly" means scores that sum to 1, or a message that says what to change.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import gradio as gr
import pytest

from tests.conftest import PROJECT_ROOT
from tests.reliability.support import record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # checked against the running app

ONE_MB = "spam and eggs " * (1024 * 1024 // 14)
AWKWARD = {
    "empty": "",
    "spaces": "   \n\t ",
    "one_mb": ONE_MB,
    "control": "good\x00day\x01\x07\x1b[31m\r\n\x7f\u200b\u202e\ufeff",
    "lone_surrogate": "good \ud800 day \udfff",
    "escaped_bytes": "bad \udcff\udcfe day",  # how Python hands over non-UTF-8 argv/file bytes
    "emoji_and_rtl": "good day 😀 \u05e9\u05dc\u05d5\u05dd",
}


def _check_scores(scores: dict, labels) -> None:
    assert set(scores) == set(labels)
    assert math.isclose(sum(scores.values()), 1.0, rel_tol=1e-4)
    assert all(math.isfinite(v) for v in scores.values())


@pytest.fixture(scope="module")
def predictor(served):
    from backend.tasks.text_classification.predictor import load_predictor

    return load_predictor(served.services.repo.get_run(served.run_id).output_dir)


@pytest.mark.parametrize("name", list(AWKWARD))
def test_predictor_answers_every_input(predictor, name):
    [row] = predictor.predict([AWKWARD[name]])
    _check_scores(row["scores"], predictor.labels)
    json.dumps(row)  # answers must be serialisable (the CLI and the API send JSON)


@pytest.mark.parametrize("name", list(AWKWARD))
def test_predict_handler_answers_or_refuses_cleanly(served, name):
    from ui.playground_tab import on_predict

    try:
        scores = on_predict(served.services, served.run_id, AWKWARD[name])
    except gr.Error as exc:
        assert name in ("empty", "spaces", "one_mb"), f"{name} refused: {exc}"
        assert "Traceback" not in str(exc) and len(str(exc)) < 400
        return
    assert name not in ("empty", "spaces", "one_mb")
    _check_scores(scores, served.services.repo.get_dataset(served.dataset_id).labels)


def _cli(served, *args: bytes | str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSMITH_")}
    env |= {"MODELSMITH_HOME": str(served.settings.home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "predict", "--run", str(served.run_id),
                           *args, "--json"], capture_output=True, env=env, cwd=served.app.workdir, timeout=180)


def test_cli_answers_awkward_bytes_and_text(served):
    texts = [b"good \xff\xfe day", b"\x01\x02\x1b", "good \u202e day".encode(), b"x" * 100_000]
    done = _cli(served, *texts)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    rows = json.loads(done.stdout)
    assert len(rows) == len(texts)
    labels = served.services.repo.get_dataset(served.dataset_id).labels
    for row in rows:
        _check_scores(row["scores"], labels)


def test_cli_refuses_an_unfinished_run_with_a_message(served):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSMITH_")}
    env |= {"MODELSMITH_HOME": str(served.settings.home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "predict", "--run", "999999", "hi",
                           "--json"], capture_output=True, env=env, cwd=served.app.workdir, timeout=180)
    assert done.returncode == 2
    assert "does not exist" in json.loads(done.stdout)["error"]
    assert b"Traceback" not in done.stderr


def test_api_answers_or_refuses_cleanly(served):
    """Through the public /predict endpoint, as any API client would call it."""
    from gradio_client import Client

    client = Client(served.url, verbose=False)
    answered = refused = 0
    for name, text in AWKWARD.items():
        if name == "lone_surrogate" or name == "escaped_bytes":
            continue  # JSON cannot carry lone surrogates: the client refuses before sending
        try:
            result = client.predict(served.run_id, text, api_name="/predict")
        except Exception as exc:  # gradio_client raises AppError with the server's message
            message = str(exc)
            assert name in ("empty", "spaces", "one_mb"), f"{name}: {message}"
            assert "Traceback" not in message and "File \"" not in message
            refused += 1
            continue
        assert name not in ("empty", "spaces", "one_mb")
        assert {c["label"] for c in result["confidences"]} <= set(
            served.services.repo.get_dataset(served.dataset_id).labels)
        answered += 1
    record_figures("prediction_inputs", {"awkward_inputs": len(AWKWARD), "api_answered": answered,
                                         "api_refused_with_message": refused})
