"""PostgreSQL as the shared store: the URL, the pool, lost connections, processes migrating and writing at once.

Tests that need a server take `postgres_database_url` (tests/conftest.py): skipped without
MODELSMITH_TEST_POSTGRES_URL on a developer's machine, failed without it on CI.
"""

import subprocess
import sys
import textwrap
import uuid

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from storage.database import (MIGRATIONS_DIR, POOL_OVERFLOW, POOL_SIZE, DatabaseUnavailable, database_url,
                              make_engine, make_sessions, migrate)
from storage.repository import Repository
from tests.conftest import PROJECT_ROOT

PROCESSES = 4
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _run_processes(script: str, *args: str, count: int = PROCESSES) -> None:
    """Start `count` Python processes running `script` with `args` at once; assert every one exits 0."""
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(index), *args],
                                 cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for index in range(count)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    failed = [(child.returncode, output[-2000:]) for child, output in zip(children, outputs) if child.returncode]
    assert failed == []


def test_the_test_server_is_reachable(postgres_admin):
    with postgres_admin.connect() as connection:
        version = connection.execute(text("SHOW server_version_num")).scalar()
    assert int(version) >= 130000  # DROP DATABASE ... WITH (FORCE), used by the fixtures, needs 13


@pytest.mark.parametrize("given", ["postgresql://u:p@db.example:5432/modelsmith",
                                   "postgres://u:p@db.example:5432/modelsmith"])
def test_a_postgresql_url_without_a_driver_means_psycopg(given):
    # SQLAlchemy's default driver would be psycopg2, which we do not ship; `postgres://` is Heroku's spelling.
    parsed = database_url(given)
    assert (parsed.drivername, parsed.host, parsed.port, parsed.database) == (
        "postgresql+psycopg", "db.example", 5432, "modelsmith")


def test_a_malformed_url_or_a_missing_driver_is_explained():
    with pytest.raises(DatabaseUnavailable, match="is not a database URL. Use e.g. sqlite:"):
        database_url("modelsmith on the db host")
    with pytest.raises(DatabaseUnavailable, match="No driver for mysql\\+nosuchdriver"):
        make_engine("mysql+nosuchdriver://u:p@localhost/modelsmith")


def test_an_unreachable_server_is_named_without_its_password(tmp_path):
    engine = make_engine(f"postgresql+psycopg://modelsmith:s3cret@/modelsmith?host={tmp_path / 'no-server-here'}")
    with pytest.raises(DatabaseUnavailable) as caught:
        migrate(engine)
    message = str(caught.value)
    assert message.startswith("Cannot connect to the database postgresql+psycopg://modelsmith:***@/modelsmith")
    assert "Check MODELSMITH_DATABASE_URL" in message and "s3cret" not in message
    engine.dispose()


def test_a_user_who_may_not_create_tables_is_told_how_to_fix_it(postgres_database_url, postgres_admin):
    # Since PostgreSQL 15 only the database's owner may create tables in `public` by default.
    role = f"modelsmith_guest_{uuid.uuid4().hex[:8]}"
    with postgres_admin.connect() as admin:
        admin.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    engine = make_engine(database_url(postgres_database_url).set(username=role).render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            migrate(engine)
    finally:
        engine.dispose()
        with postgres_admin.connect() as admin:
            admin.exec_driver_sql(f"DROP ROLE {role}")
    message = str(caught.value)
    assert message.startswith(f"{role} may not create Modelsmith's tables in postgresql+psycopg://{role}@")
    assert "permission denied for schema public" in message
    assert f"GRANT CREATE ON SCHEMA public TO {role}" in message


def test_the_engine_has_a_bounded_pool_that_tests_connections(postgres_database_url):
    engine = make_engine(postgres_database_url)
    assert engine.dialect.driver == "psycopg"
    assert engine.pool._pre_ping is True
    assert (engine.pool.size(), engine.pool._max_overflow) == (POOL_SIZE, POOL_OVERFLOW)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW application_name")).scalar() == "modelsmith"
        assert connection.connection.driver_connection.info.get_parameters()["keepalives_idle"] == "30"
    engine.dispose()
    # The URL's own parameters win: e.g. one application_name per machine, to tell them apart.
    url = database_url(postgres_database_url).update_query_dict(
        {"application_name": "modelsmith-node-2", "keepalives_idle": "5"})
    engine = make_engine(url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        assert connection.execute(text("SHOW application_name")).scalar() == "modelsmith-node-2"
        assert connection.connection.driver_connection.info.get_parameters()["keepalives_idle"] == "5"
    engine.dispose()


def test_connections_the_server_dropped_are_replaced_unnoticed(postgres_database_url, postgres_admin):
    engine = make_engine(postgres_database_url)
    migrate(engine)
    repo = Repository(make_sessions(engine))
    assert repo.list_runs() == []  # a connection now waits in the pool
    name = engine.url.database
    with postgres_admin.connect() as admin:  # what a server restart or an idle-session timeout does
        killed = admin.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    assert killed >= 1
    assert repo.list_runs() == []  # pool_pre_ping found the dead connection and opened a new one
    engine.dispose()


@pytest.mark.slow  # starts 4 Python processes
def test_processes_starting_together_migrate_one_after_the_other(postgres_database_url):
    # Every worker process migrates at start-up; without the advisory lock two of them would both
    # create the tables and one would fail with "relation already exists".
    _run_processes("""
        import sys
        from storage.database import make_engine, migrate
        engine = make_engine(sys.argv[2])
        migrate(engine)
        engine.dispose()
    """, postgres_database_url, count=PROCESSES)
    engine = make_engine(postgres_database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    engine.dispose()

