"""Safe defaults, checked against the running app (the `served` fixture) wherever the app shows them.

Loopback bind, the upload limit from settings, no extra served folders, the home dir never
served, uploads removed from Gradio's cache after ingest, monitoring off, only the named
prediction endpoint public, error details hidden outside debug.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from tests.conftest import PROJECT_ROOT
from tests.reliability.conftest import UPLOAD_LIMIT_MB
from tests.reliability.support import gradio_config, http_get, listening_addresses, write_toy_csv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # checked against the running app

PUBLIC_ENDPOINTS = {"/predict", "/generate"}  # the only handlers meant for API clients


def test_binds_loopback_only(served):
    assert served.settings.host == "127.0.0.1"
    assert listening_addresses(served.app.port) == {"127.0.0.1"}
    from ui.app import launch_kwargs  # ...unless told otherwise (MODELSMITH_HOST), e.g. inside a container

    assert launch_kwargs(served.settings.model_copy(update={"host": "0.0.0.0"}))["server_name"] == "0.0.0.0"


def test_upload_limit_comes_from_settings(served):
    assert gradio_config(served.url)["max_file_size"] == UPLOAD_LIMIT_MB * 1024 * 1024
    boundary = uuid.uuid4().hex
    too_big = b"a,b\n" + b"x" * int(1.5 * UPLOAD_LIMIT_MB * 1024 * 1024)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + too_big + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(served.url + "/gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 413
    stored = [p for p in served.upload_dir.rglob("big.csv")] if served.upload_dir.exists() else []
    assert stored == [], "a refused upload must not be kept"


def test_no_extra_allowed_paths(served):
    from ui.app import launch_kwargs
    from ui.playground_tab import predictions_dir

    kwargs = launch_kwargs(served.settings)
    assert kwargs["allowed_paths"] == [str(predictions_dir(served.settings).resolve())]
    # A file next to the predictions folder (but outside it) in the home dir is not served.
    neighbour = served.settings.home / "notes.txt"
    neighbour.write_text("private notes 8f3a", encoding="utf-8")
    try:
        status, body = http_get(f"{served.url}/gradio_api/file={neighbour.resolve()}")
        assert 400 <= status < 500 and b"8f3a" not in body
    finally:
        neighbour.unlink()


def test_home_dir_files_are_never_served(served):
    home = served.settings.home.resolve()
    files = [p for p in home.rglob("*") if p.is_file() and "tmp" not in p.relative_to(home).parts]
    assert any(p.name == "modelsmith.db" for p in files) and any(p.suffix == ".parquet" for p in files)
    assert any(p.name == "model.safetensors" or p.suffix == ".safetensors" for p in files)
    for path in files:
        status, body = http_get(f"{served.url}/gradio_api/file={path}")
        assert 400 <= status < 500, f"{path} answered {status}"
        head = path.read_bytes()[:64]
        assert not head or head not in body


def test_monitoring_dashboard_is_off(served):
    for route in ("/monitoring", "/monitoring/summary", "/gradio_api/monitoring"):
        status, body = http_get(served.url + route)
        assert 400 <= status < 500, (route, status)
        assert b"See console" not in body


def test_only_named_prediction_endpoints_are_public(served):
    status, body = http_get(served.url + "/gradio_api/info")
    assert status == 200
    info = json.loads(body)
    named = set(info.get("named_endpoints", {}))
    assert "/predict" in named and named <= PUBLIC_ENDPOINTS, named
    assert not info.get("unnamed_endpoints"), info.get("unnamed_endpoints")
    # Every other handler is private. Gradio still runs private handlers for whoever can load the
    # page (the browser calls them), so login (MODELSMITH_AUTH) and the loopback bind are the boundary.
    public = {d.get("api_name") for d in gradio_config(served.url)["dependencies"]
              if d.get("api_visibility", "public") != "private"}
    assert {f"/{name}" for name in public} <= PUBLIC_ENDPOINTS, public


def test_gradio_client_sees_only_predict(served):
    from gradio_client import Client

    client = Client(served.url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) <= PUBLIC_ENDPOINTS and "/predict" in api["named_endpoints"]
    assert not api["unnamed_endpoints"]


def test_error_details_hidden_outside_debug(served):
    from ui.app import launch_kwargs

    assert gradio_config(served.url)["show_error"] is False
    assert launch_kwargs(served.settings.model_copy(update={"debug": True}))["show_error"] is True


def test_upload_is_removed_from_gradio_cache_after_ingest(tmp_path, monkeypatch):
    """The Data tab's ingest handler deletes the temp upload (and its hash folder) once stored."""
    from backend.services import build_services
    from backend.settings import Settings
    from ui import data_tab

    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    (cache / "0123abcd").mkdir(parents=True)  # Gradio keeps each upload in a folder named by its hash
    upload = write_toy_csv(cache / "0123abcd" / "toy.csv", pairs=20)
    own_file = write_toy_csv(tmp_path / "mine.csv", pairs=21)  # not in the cache: never deleted
    services = build_services(Settings(home=tmp_path / "home", _env_file=None))
    try:
        report, *_ = data_tab.on_ingest(services, str(upload), "text-classification", "message", "verdict",
                                        None, "toy", 20)
        assert "ms-error" not in str(report)
        assert len(services.repo.list_datasets()) == 1
        assert not upload.exists() and not upload.parent.exists() and cache.is_dir()
        # Pressing Ingest again on the same (now removed) upload says what to do.
        report, *_ = data_tab.on_ingest(services, str(upload), "text-classification", "message", "verdict",
                                        None, "toy", 20)
        assert "Upload the file again" in str(report)
        data_tab.on_ingest(services, str(own_file), "text-classification", "message", "verdict", None, "mine", 20)
        assert own_file.exists()
    finally:
        services.close()


def test_discard_upload_never_touches_files_outside_the_cache(tmp_path):
    from backend.data.uploads import discard_upload

    cache = tmp_path / "cache"
    cache.mkdir()
    beside = tmp_path / "escape.csv"  # reached from the cache by "../"
    beside.write_text("keep", encoding="utf-8")
    assert discard_upload(str(cache / ".." / "escape.csv"), cache) is False
    assert discard_upload(str(beside), cache) is False
    assert beside.read_text(encoding="utf-8") == "keep"
    assert discard_upload(str(PROJECT_ROOT / "app.py"), cache) is False and (PROJECT_ROOT / "app.py").is_file()
    assert discard_upload(None, cache) is False and discard_upload(str(cache), cache) is False
    assert cache.is_dir()


def test_run_history_page_is_off(served):
    # Gradio 6's run history records each call (people's texts) and can sync them to a Hub bucket.
    status, _ = http_get(served.url + "/gradio_api/runs")
    assert status == 404
    assert gradio_config(served.url).get("run_history") is False
