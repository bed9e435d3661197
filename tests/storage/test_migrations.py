"""Alembic: a fresh DB reaches head; a DB at the previous revision upgrades without losing rows."""

from sqlalchemy import inspect, text

from storage.database import make_engine, migrate


def test_fresh_database_reaches_head(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "runs", "metrics", "artifacts", "alembic_version"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    migrate(engine)  # running again at start-up is a no-op
    engine.dispose()


def test_upgrade_from_previous_revision_keeps_rows(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    assert "artifacts" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO datasets (id, name, task, content_hash, path, text_column, label_column, rows, train_rows,"
            " validation_rows, labels_json, classes_json, report_json, created_at) VALUES (1, 'old', "
            "'text-classification', 'abc', '/x', 'text', 'label', 4, 3, 1, '[\"a\",\"b\"]', '{}', '{}', "
            "'2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, metrics_json)"
            " VALUES (1, 'r', 1, 'text-classification', 'lstm', 'succeeded', '{}', '2026-01-01 00:00:00', '{}')"))
        connection.execute(text("INSERT INTO metrics (run_id, key, step, value, time) VALUES "
                                "(1, 'train_loss', 1, 0.5, '2026-01-01 00:00:00')"))
    migrate(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("runs")}
    assert "progress" in columns and "artifacts" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM datasets")).scalars().all() == ["old"]
        assert connection.execute(text("SELECT progress FROM runs WHERE id = 1")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM metrics")).scalar() == 1
    engine.dispose()
