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

pytestmark = [pytest.mark.slow]  # each estimate runs in a process of its own


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


def test_a_table_estimate_keeps_its_boosting_rounds_through_the_worker(process_services, tmp_path, monkeypatch):
    """gbdt's estimate (backend/tasks/tabular/estimate.py) crosses the process boundary with its own unit."""
    from backend.data.store import IngestOptions
    from tests.backend.tasks.tabular.conftest import mixed_table

    path = tmp_path / "mixed.csv"
    mixed_table().to_csv(path, index=False)
    dataset = process_services.ingest(path, IngestOptions(task="tabular-classification", label_column="label",
                                                          drop_columns=("noise", "amount"))).dataset
    monkeypatch.setattr(in_process, "estimate", lambda *_: (_ for _ in ()).throw(AssertionError("in process")))
    text = train_tab.on_estimate(process_services, dataset.id, dataset.task, "gbdt", "",
                                 *form_values("gbdt", learning_rate=0.1, num_rounds=50, min_rows_per_leaf=5))
    assert "measured boosting rounds" in text and "Whole run (50 boosting rounds)" in text, text
    assert "one-byte bins" in text and "Parameters" not in text
