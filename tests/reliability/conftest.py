"""Fixtures: one real app process with a trained model, shared by the launch, probe, input and load tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.support import AppProcess, free_port, ingest_toy, tiny_lstm

UPLOAD_LIMIT_MB = 1  # small, so the size limit can be tested with a 1.5 MB upload
DEMO_UPLOAD_LIMIT_MB = 2  # above the old fixed 1 MB demo cap, below a 3 MB probe (tests/reliability/test_demo_uploads.py)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the mark must be there when it looks
def pytest_collection_modifyitems(items):
    """A test that uses `served` starts the app process, so it is `slow` (left out of the developer loop)."""
    for item in items:
        if "served" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@dataclass
class Served:
    """A `python app.py` process on 127.0.0.1 plus, in this process, services on the same home dir."""

    app: AppProcess
    services: object  # backend.services.Services
    run_id: int  # a succeeded text-classification run
    dataset_id: int
    upload_dir: Path  # the app's GRADIO_TEMP_DIR

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def settings(self):
        return self.services.settings


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The app serving a home dir that holds a dataset and a model it trained itself (about 15 s)."""
    from backend.services import build_services
    from backend.settings import Settings

    base = tmp_path_factory.mktemp("served")
    settings = Settings(home=base / "home", max_upload_mb=UPLOAD_LIMIT_MB, demo_max_upload_mb=DEMO_UPLOAD_LIMIT_MB,
                        _env_file=None)
    services = build_services(settings)
    dataset = ingest_toy(services, base)
    # Trained before the app starts: the Playground's run picker (and so the predict API, which
    # checks its choices) lists the runs that had succeeded when the page was built.
    run_id = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="served-model"))
    run = services.runner.run_job(run_id)
    assert run.status == "succeeded", run.error
    upload_dir = base / "uploads"
    app = AppProcess(settings.home, free_port(), base / "work",
                     env={"MODELSMITH_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
                          "MODELSMITH_DEMO_MAX_UPLOAD_MB": str(DEMO_UPLOAD_LIMIT_MB),
                          "GRADIO_TEMP_DIR": str(upload_dir)})
    app.start()
    try:
        app.wait_ready()
        yield Served(app=app, services=services, run_id=run_id, dataset_id=dataset.id, upload_dir=upload_dir)
    finally:
        app.stop()
        services.close()
