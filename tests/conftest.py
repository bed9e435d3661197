"""Shared fixtures: an isolated home dir (a SQLite *file*, so every thread sees one DB), offline HF.

Storage and job tests also run on PostgreSQL: their folders override `database_url` with
`each_database_url`, which gives every test a database of its own on the server named by
MODELSMITH_TEST_POSTGRES_URL (`.ci/postgres.sh` starts a throwaway one and sets it).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Runs train in the test's own process unless a test asks for worker processes: many tests patch
# the trainer or register a toy task in-process, and each `accelerate launch` costs a Python start
# with torch. tests/backend/jobs/test_workers.py covers the process launcher end to end.
os.environ.setdefault("MODELSMITH_LAUNCHER", "thread")

import uuid
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
POSTGRES_URL_VARIABLE = "MODELSMITH_TEST_POSTGRES_URL"


def running_in_ci() -> bool:
    """True on a CI machine (CI=true, as .ci/run and every CI service set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_admin():
    """An AUTOCOMMIT engine on the server of MODELSMITH_TEST_POSTGRES_URL (CREATE/DROP DATABASE need it).

    Skips when the variable is unset (a developer without PostgreSQL), but fails on CI, so a
    broken CI set-up cannot silently drop the PostgreSQL half of the suite.
    """
    url = os.environ.get(POSTGRES_URL_VARIABLE, "").strip()
    if not url:
        message = (f"{POSTGRES_URL_VARIABLE} is not set: PostgreSQL variants need a server "
                   "(run the tests through .ci/postgres.sh, which starts a throwaway one)")
        if running_in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    from sqlalchemy import create_engine

    from storage.database import database_url

    engine = create_engine(database_url(url), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_database_url(postgres_admin):
    """URL of a new, empty PostgreSQL database, dropped after the test (with any connection left open)."""
    name = f"modelsmith_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def each_database_url(request):
    """'' (the SQLite file in the home dir), then a fresh PostgreSQL database: override `database_url` with it."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def database_url():
    """The settings' database URL; '' means the default SQLite file in the temp home dir."""
    return ""


@pytest.fixture
def settings(tmp_path, database_url):
    """Settings pointing at a fresh home dir under tmp_path (and at `database_url`)."""
    from backend.settings import Settings

    # Passed explicitly: a MODELSMITH_DATABASE_URL in the developer's shell must not reach the tests.
    s = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    s.ensure_dirs()
    return s


@pytest.fixture
def repo(settings):
    """A migrated repository on the settings' database (a SQLite file in the temp home dir by default)."""
    from storage.database import make_engine, make_sessions, migrate
    from storage.repository import Repository

    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    yield Repository(make_sessions(engine))
    engine.dispose()


@pytest.fixture
def shared_data():
    """Folder of the real datasets (../shared/data); skips cleanly if it is not beside the project."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the project")
    return SHARED_DATA
