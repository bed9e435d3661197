"""Settings defaults: loopback and a local folder, except inside a Hugging Face Space."""

from pathlib import Path

import pytest

from backend import settings as settings_module
from backend.settings import Settings


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SPACE_ID", "MODELSMITH_HOST", "MODELSMITH_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env file from the caller's folder
    return monkeypatch


def test_defaults_bind_loopback_and_keep_data_beside_the_app(clean_env):
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.home == Path("./modelsmith_data")
    assert settings.port == 7860


def test_a_space_listens_on_all_interfaces_so_its_proxy_reaches_the_app(clean_env):
    clean_env.setenv("SPACE_ID", "someone/modelsmith")
    assert Settings().host == "0.0.0.0"


def test_an_explicit_host_wins_inside_a_space_too(clean_env):
    clean_env.setenv("SPACE_ID", "someone/modelsmith")
    clean_env.setenv("MODELSMITH_HOST", "127.0.0.1")
    assert Settings().host == "127.0.0.1"


def test_a_space_with_persistent_storage_keeps_data_there(clean_env, tmp_path):
    clean_env.setenv("SPACE_ID", "someone/modelsmith")
    clean_env.setattr(settings_module, "Path", lambda value: tmp_path if value == "/data" else Path(value))
    assert Settings().home == tmp_path / "modelsmith"


def test_a_space_without_persistent_storage_uses_the_local_folder(clean_env, tmp_path):
    clean_env.setenv("SPACE_ID", "someone/modelsmith")
    clean_env.setattr(settings_module, "Path", lambda value: tmp_path / "absent" if value == "/data" else Path(value))
    assert Settings().home == Path("./modelsmith_data")


@pytest.mark.parametrize("jobs", [2, 16])
def test_the_thread_launcher_refuses_more_than_one_job_with_the_reason(clean_env, jobs):
    # Runs inside the app's process share one process-wide training lock: a second worker thread
    # would only show a waiting run as "running".
    with pytest.raises(ValueError, match="app trains one run at a time.*python app.py train"):
        Settings(launcher="thread", max_concurrent_jobs=jobs)
    assert Settings(launcher="thread").max_concurrent_jobs in (0, 1)  # 0 = auto = one in this mode


def test_worker_processes_may_train_several_runs_at_once(clean_env):
    assert Settings(launcher="process", max_concurrent_jobs=2).max_concurrent_jobs == 2
    with pytest.raises(ValueError):
        Settings(max_concurrent_jobs=-1)


def test_image_loading_settings_read_the_environment_and_reach_the_training_worker(clean_env):
    from backend.jobs.launch import worker_environment

    for name in ("MODELSMITH_IMAGE_CACHE_MB", "MODELSMITH_IMAGE_WORKERS"):
        clean_env.delenv(name, raising=False)
    defaults = Settings()
    assert defaults.image_cache_mb == 2048 and defaults.image_cache_bytes == 2048 * 2**20
    assert defaults.image_workers is None  # the device decides (backend.tasks.image_classification.batches)
    assert "MODELSMITH_IMAGE_WORKERS" not in worker_environment(defaults)
    clean_env.setenv("MODELSMITH_IMAGE_CACHE_MB", "0")
    clean_env.setenv("MODELSMITH_IMAGE_WORKERS", "3")
    chosen = Settings()
    assert chosen.image_cache_bytes == 0 and chosen.image_workers == 3
    env = worker_environment(chosen)
    assert env["MODELSMITH_IMAGE_CACHE_MB"] == "0.0" and env["MODELSMITH_IMAGE_WORKERS"] == "3"
    with pytest.raises(ValueError):
        Settings(image_cache_mb=-1)
