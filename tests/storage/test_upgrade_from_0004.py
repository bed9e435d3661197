"""A database made at revision 0004 (before worker processes) upgrades to head: its runs keep every
row, gain empty worker columns, and a run it left `running` is judged by its heartbeat."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, text

from backend.jobs.liveness import sweep
from storage.database import make_engine, make_sessions, migrate
from storage.models import utcnow
from storage.repository import Repository

WORKER_COLUMNS = {"worker_pid", "worker_started", "worker_host", "worker_gpus", "worker_port"}


def _rows_at_0004(beat_recent, beat_old) -> list[tuple[str, dict]]:
    return [
        ("INSERT INTO datasets (id, name, task, content_hash, path, text_column, label_column, rows, train_rows,"
         " validation_rows, labels_json, classes_json, report_json, created_at, columns_json, input_columns_json,"
         " target_column) VALUES (1, 'old', 'text-classification', 'abc', '/data/abc', 'text', 'label', 4, 3, 1,"
         " '[\"neg\", \"pos\"]', '{}', '{}', '2026-11-01 00:00:00', '[]', '[\"text\"]', 'label')", {}),
        ("INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, metrics_json,"
         " progress, heartbeat_at) VALUES (:id, :name, 1, 'text-classification', 'lstm', :status,"
         " '{\"dataset_id\": 1, \"template\": {\"kind\": \"lstm\"}}', '2026-11-01 00:00:00', '{}', 0.5, :beat)",
         dict(id=1, name="done", status="succeeded", beat=beat_old)),
        ("INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, metrics_json,"
         " progress, heartbeat_at) VALUES (:id, :name, 1, 'text-classification', 'lstm', :status,"
         " '{\"dataset_id\": 1, \"template\": {\"kind\": \"lstm\"}}', '2026-11-01 00:00:00', '{}', 0.5, :beat)",
         dict(id=2, name="beating", status="running", beat=beat_recent)),
        ("INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, metrics_json,"
         " progress, heartbeat_at) VALUES (:id, :name, 1, 'text-classification', 'lstm', :status,"
         " '{\"dataset_id\": 1, \"template\": {\"kind\": \"lstm\"}}', '2026-11-01 00:00:00', '{}', 0.5, :beat)",
         dict(id=3, name="silent", status="running", beat=beat_old)),
    ]


def test_a_0004_database_upgrades_and_its_running_runs_are_judged_by_heartbeat(settings):
    engine = make_engine(settings.resolved_database_url)
    migrate(engine, "0004")
    assert not WORKER_COLUMNS & {c["name"] for c in inspect(engine).get_columns("runs")}
    now = utcnow()
    with engine.begin() as connection:
        for statement, values in _rows_at_0004(now, now - timedelta(seconds=600)):
            connection.execute(text(statement), values)
    migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
    assert WORKER_COLUMNS <= {c["name"] for c in inspect(engine).get_columns("runs")}

    repo = Repository(make_sessions(engine))
    done = repo.get_run(1)
    assert (done.name, done.status, done.progress, done.worker_pid, done.worker_host) == ("done", "succeeded", 0.5,
                                                                                         None, None)
    assert sweep(repo, heartbeat_timeout_s=60) == [3]  # no process recorded: the heartbeat decides
    assert repo.get_run(2).status == "running" and repo.get_run(3).status == "interrupted"
    repo.set_worker(2, pid=123, started=1.0, host="elsewhere", gpus="0,1", port=29500)  # the new columns take values
    assert (repo.get_run(2).worker_gpus, repo.get_run(2).worker_port) == ("0,1", 29500)
    engine.dispose()
