"""A short version of bench/bench_load.py: API clients while a job trains in the app, then idle; no errors.

No latency assertions (shared CI machines vary); the figures are recorded for the README.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT
from tests.reliability.support import record_figures, tiny_lstm, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # clients against the app while it trains

CLIENTS = 5
SECONDS = 10


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", PROJECT_ROOT / "bench" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 2 x 10 s of load plus waiting for the busy job to finish
def test_clients_get_answers_while_a_job_trains_and_when_idle(served):
    bench = _bench()
    services = served.services
    texts = ["what a good day with friends", "what a bad day in the rain", "", "ok"]
    texts = [t for t in texts if t]

    def list_runs():  # the Runs tab's handler, on the same DB the app writes to
        from ui.runs_tab import on_refresh_list

        return on_refresh_list(services, None, None, None)

    # The served app's worker claims this queued run and trains it while the clients call.
    busy_run = services.runner.submit(tiny_lstm(served.dataset_id, epochs=3, name="load-busy"))
    wait_until(lambda: services.repo.get_metrics(busy_run), 180, "the busy job to train", interval=0.1)
    busy = bench.hammer(served.url, served.run_id, texts, CLIENTS, SECONDS, list_runs)
    status_during = services.repo.get_run(busy_run).status
    wait_until(lambda: services.repo.get_run(busy_run).status not in ("queued", "running"), 300,
               "the busy job to finish")
    idle = bench.hammer(served.url, served.run_id, texts, CLIENTS, SECONDS, list_runs)

    assert busy["errors"] == 0, busy["error_samples"]
    assert idle["errors"] == 0, idle["error_samples"]
    assert busy["predict"]["ok"] > 0 and busy["list_runs"]["ok"] > 0 and idle["predict"]["ok"] > 0
    assert status_during in ("running", "succeeded")
    assert services.repo.get_run(busy_run).status == "succeeded"
    record_figures("load_short", {"clients": CLIENTS, "seconds": SECONDS, "busy": {k: busy[k] for k in (
        "predict", "list_runs", "errors")}, "idle": {k: idle[k] for k in ("predict", "list_runs", "errors")}})
