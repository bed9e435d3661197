"""A real `python app.py` serving from PostgreSQL: it migrates, sweeps only dead runs, trains the queue, serves.

Runs only with MODELSMITH_TEST_POSTGRES_URL (`.ci/postgres.sh`); see tests/conftest.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.reliability.support import AppProcess, free_port, http_get, ingest_toy, tiny_lstm, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_the_app_serves_and_trains_from_a_shared_postgresql_database(postgres_database_url, tmp_path):
    from backend.services import build_services
    from backend.settings import Settings
    from storage.models import utcnow

    home = tmp_path / "home"
    services = build_services(Settings(home=home, database_url=postgres_database_url, _env_file=None))
    app, beating = None, threading.Event()
    try:
        dataset = ingest_toy(services, tmp_path, pairs=40)
        # Two runs "another machine" was training: one still beats, one stopped beating long ago.
        live, dead = (services.runner.submit(tiny_lstm(dataset.id, name=name)) for name in ("live", "dead"))
        for run_id in (live, dead):
            services.repo.claim(run_id, str(services.settings.runs_dir / str(run_id)))
        with services.engine.begin() as connection:
            connection.execute(text("UPDATE runs SET heartbeat_at = :aged WHERE id = :id"),
                               {"aged": utcnow() - timedelta(hours=1), "id": dead})
        queued = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="queued"))

        def beat():  # the other machine's worker, alive for the whole test
            while not beating.wait(2):
                services.repo.heartbeat(live)

        threading.Thread(target=beat, daemon=True).start()

        app = AppProcess(home, free_port(), tmp_path / "work",
                         env={"MODELSMITH_DATABASE_URL": postgres_database_url}).start().wait_ready()
        assert http_get(app.url + "/")[0] == 200
        final = wait_until(lambda: services.repo.get_run(queued).status in ("succeeded", "failed")
                           and services.repo.get_run(queued), 300, "the app to train the queued run")
        assert final.status == "succeeded", (final.error, app.log_tail())
        assert services.repo.get_metrics(queued, ["train_loss"])  # progress went to PostgreSQL
        assert services.repo.get_run(dead).status == "interrupted"  # its heartbeat was stale
        assert services.repo.get_run(live).status == "running"  # beating elsewhere: left alone
    finally:
        beating.set()
        if app is not None:
            app.stop()
        services.close()
