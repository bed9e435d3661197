"""Shared fixtures: an isolated home dir (a SQLite *file*, so every thread sees one DB), offline HF."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture
def settings(tmp_path):
    """Settings pointing at a fresh home dir under tmp_path."""
    from backend.settings import Settings

    s = Settings(home=tmp_path / "home", _env_file=None)
    s.ensure_dirs()
    return s


@pytest.fixture
def repo(settings):
    """A migrated SQLite-file repository in the temp home dir."""
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
