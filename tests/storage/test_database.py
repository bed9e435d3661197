"""Engine and sessions: SQLite pragmas, folder creation, any cwd, readers that never wait on a writer.

Tests taking `repo` or `settings` run on SQLite and on PostgreSQL (tests/storage/conftest.py).
"""

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.database import READ_ONLY, DatabaseUnavailable, make_engine, make_sessions, migrate
from storage.repository import Repository


def _pragmas(connection):
    return {name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}


def test_every_pooled_connection_has_the_pragmas(repo, settings, dialect):
    if dialect != "sqlite":
        pytest.skip("SQLite pragmas; PostgreSQL's engine is checked in test_postgresql.py")
    with repo._sessions() as session:
        assert _pragmas(session) == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000,
                                     "synchronous": 1}  # 1 = NORMAL
    engine = make_engine(settings.resolved_database_url)
    # Two pool connections open at once; read-only, as two writers would queue on each other.
    with engine.connect().execution_options(**READ_ONLY) as first, \
            engine.connect().execution_options(**READ_ONLY) as second:
        assert first.connection.driver_connection is not second.connection.driver_connection
        assert _pragmas(first) == _pragmas(second)
        assert _pragmas(second)["foreign_keys"] == 1
    engine.dispose()


def test_foreign_keys_are_enforced(repo):
    with pytest.raises(IntegrityError):
        with repo._sessions.begin() as session:
            session.execute(text("INSERT INTO metrics (run_id, key, step, value, time) "
                                 "VALUES (12345, 'loss', 1, 0.5, '2026-01-01 00:00:00')"))


def test_make_engine_creates_the_parent_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "modelsmith.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    assert path.is_file()
    engine.dispose()


def test_sessions_keep_objects_readable_after_commit(repo):
    assert repo._sessions.kw["expire_on_commit"] is False


def test_migrate_works_from_any_working_directory(tmp_path, monkeypatch, settings, dialect):
    monkeypatch.chdir(tmp_path)  # no migrations folder here: the path must not depend on the cwd
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    migrate(engine)  # at head already: a no-op, as at every start-up
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
        if dialect == "sqlite":
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1  # switched back on after migrating
    engine.dispose()


def test_in_memory_sqlite_url_works_in_one_thread():
    engine = make_engine("sqlite://")
    migrate(engine)
    repo = Repository(make_sessions(engine))
    dataset = repo.add_dataset(name="m", task="text-classification", content_hash="m", path="/m", text_column="t",
                               label_column=None, rows=1, train_rows=1, validation_rows=0, labels=[], classes={},
                               report={})
    assert repo.list_datasets() == [dataset]
    engine.dispose()


def test_reads_do_not_wait_for_an_open_write_transaction(repo, settings, add_dataset):
    dataset = add_dataset()
    writer_engine = make_engine(settings.resolved_database_url)
    result: dict = {}

    def read():
        result["datasets"] = repo.list_datasets()

    with writer_engine.begin() as writer:  # holds SQLite's write lock (BEGIN IMMEDIATE) until the end
        writer.execute(text("UPDATE datasets SET name = 'uncommitted'"))
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=5)  # a reader taking the write lock would wait up to busy_timeout (30 s)
        assert not reader.is_alive()
    assert result["datasets"] == [dataset]  # a consistent snapshot without the uncommitted change
    writer_engine.dispose()


def test_a_sqlite_file_that_cannot_be_opened_says_what_to_check(tmp_path):
    path = tmp_path / "modelsmith.db"
    path.mkdir()  # a folder where the database file should be (root ignores permission bits, so not chmod)
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(DatabaseUnavailable, match="unable to open database file. Check that its folder exists"):
        migrate(engine)
    engine.dispose()
