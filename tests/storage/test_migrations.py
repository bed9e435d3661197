"""Alembic: a fresh DB reaches head, models match migrations, an 0001 DB upgrades without losing rows.

Each test runs on SQLite and on PostgreSQL (tests/storage/conftest.py): every migration must run on both.
"""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from storage.database import make_engine, make_sessions, migrate
from storage.models import Base
from storage.repository import Repository

OLD_ROWS = [
    "INSERT INTO datasets (id, name, task, content_hash, path, text_column, label_column, rows, train_rows,"
    " validation_rows, labels_json, classes_json, report_json, created_at) VALUES (1, 'old', 'text-classification',"
    " 'abc', '/data/abc', 'text', 'label', 4, 3, 1, '[\"neg\", \"pos\"]', '{\"neg\": 2, \"pos\": 2}', '{}',"
    " '2026-01-01 00:00:00')",
    "INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, finished_at,"
    " metrics_json) VALUES (1, 'first', 1, 'text-classification', 'lstm', 'succeeded',"
    " '{\"dataset_id\": 1, \"template\": {\"kind\": \"lstm\"}}', '2026-01-01 00:00:00', '2026-01-01 00:10:00',"
    " '{\"macro_f1\": 0.8}')",
    "INSERT INTO metrics (run_id, key, step, value, time) VALUES (1, 'train_loss', 1, 0.7, '2026-01-01 00:01:00'),"
    " (1, 'train_loss', 2, 0.5, '2026-01-01 00:02:00')",
]


def _version(engine):
    with engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_fresh_database_reaches_head(settings):
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    assert {"datasets", "runs", "metrics", "artifacts", "alembic_version"} <= set(inspect(engine).get_table_names())
    assert _version(engine) == "0006"
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("metrics")}
    assert indexes["ix_metrics_run_key_step"]["column_names"] == ["run_id", "key", "step"]
    unique = {index["name"]: index["unique"] for index in inspect(engine).get_indexes("datasets")}
    assert unique["ix_datasets_content_hash"] == 1
    engine.dispose()


def test_models_match_the_migrations(settings):
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []  # a model change needs a new revision
    engine.dispose()


def test_database_at_0001_upgrades_to_head_without_losing_rows(settings):
    engine = make_engine(settings.resolved_database_url)
    migrate(engine, "0001")
    assert _version(engine) == "0001"
    assert "artifacts" not in inspect(engine).get_table_names()
    assert "progress" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    with engine.begin() as connection:
        for statement in OLD_ROWS:
            connection.execute(text(statement))

    migrate(engine)
    assert _version(engine) == "0006"
    assert "artifacts" in inspect(engine).get_table_names()
    assert "progress" in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert inspect(engine).get_foreign_keys("runs")[0]["referred_table"] == "datasets"  # FK kept
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM metrics")).scalar() == 2

    repo = Repository(make_sessions(engine))  # old rows read back through today's code
    dataset = repo.get_dataset(1)
    assert (dataset.name, dataset.labels, dataset.classes) == ("old", ["neg", "pos"], {"neg": 2, "pos": 2})
    run = repo.get_run(1)
    assert (run.name, run.status, run.progress, run.metrics) == ("first", "succeeded", 0.0, {"macro_f1": 0.8})
    assert repo.latest_metrics(1) == {"train_loss": 0.5}
    repo.add_artifact(1, "model", "/runs/1")
    assert [a.kind for a in repo.list_artifacts(1)] == ["model"]
    repo.delete_run(1)  # cascades still work on the upgraded schema
    assert repo.get_metrics(1) == [] and repo.list_artifacts(1) == []
    engine.dispose()
