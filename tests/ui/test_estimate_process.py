"""The Train tab's estimate with worker processes (the app's default): the model is built and
timed in a process of its own, never in the serving app; a failure, a crash and a timeout each
come back as a message that says what to do."""

import sys
from pathlib import Path

import pytest

import backend.jobs.estimate_worker as estimate_worker
import backend.training.estimate as in_process
from backend.services import build_services
from backend.settings import Settings
from tests.ui.conftest import TINY_LSTM_VALUES, form_values
from tests.ui.test_handlers import ingest_toy
from ui import train_tab


@pytest.fixture
def process_services(settings):
    services = build_services(Settings(home=settings.home, database_url=settings.database_url, launcher="process",
                                       device="cpu", estimate_timeout_s=120, _env_file=None))
    yield services
    services.close()


def estimate(services, dataset_id):
    return train_tab.on_estimate(services, dataset_id, "text-classification", "lstm", "",
                                 *form_values(**TINY_LSTM_VALUES))


def test_the_estimate_is_measured_in_its_own_process(process_services, toy_csv, monkeypatch):
    dataset = ingest_toy(process_services, toy_csv)

    def not_here(*_):
        raise AssertionError("the serving process built the model")

    monkeypatch.setattr(in_process, "estimate", not_here)
    text = estimate(process_services, dataset.id)
    assert "Parameters:" in text and "Time per epoch on CPU" in text, text


def test_a_failed_crashed_or_slow_estimate_says_what_to_do(process_services, toy_csv, monkeypatch):
    dataset = ingest_toy(process_services, toy_csv)
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr(estimate_worker, "estimate_command", lambda dataset_id: crash)
    text = estimate(process_services, dataset.id)
    assert "ms-error" in text and "killed by SIGKILL" in text and "ran out of memory" in text
    monkeypatch.undo()

    slow = process_services.settings.model_copy(update={"estimate_timeout_s": 1})
    monkeypatch.setattr(process_services, "settings", slow)
    text = estimate(process_services, dataset.id)
    assert "ms-error" in text and "took longer than 1 s" in text and "smaller settings" in text
    monkeypatch.undo()

    for path in Path(dataset.path).rglob("*.parquet"):  # the dataset's files are gone: the estimate fails
        path.unlink()
    text = estimate(process_services, dataset.id)
    assert "ms-error" in text and "Traceback" not in text and ("missing" in text or "does not exist" in text), text
