"""Path traversal and file-route probes against the running app: every one refused, nothing leaked."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.reliability.support import http_get, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # probes the running app

# Bytes that would show a leak: SQLite's header, Parquet's magic, safetensors' header, /etc/passwd.
SECRETS = (b"SQLite format 3", b"PAR1", b"__metadata__", b"root:x:0:0")


def _probes(served) -> list[str]:
    home = served.settings.home.resolve()
    db = home / "modelsmith.db"
    run_dir = next((home / "runs").iterdir())
    weights = next(run_dir.rglob("*.safetensors"))
    parquet = next((home / "datasets").rglob("*.parquet"))
    upload_dir = served.upload_dir.resolve()
    # The app runs from <base>/work, so "../home/..." is the home dir relative to its cwd.
    relative_db = "../home/modelsmith.db"
    quoted = urllib.parse.quote
    targets = [str(db), f"{db}-wal", f"{db}-shm", str(weights), str(parquet), str(home), str(home / ".serving.lock"),
               relative_db, "home/modelsmith.db", "modelsmith.db", f"{upload_dir}/../home/modelsmith.db",
               f"{home}/tmp/../modelsmith.db", f"{home}/tmp/../datasets/{parquet.parent.name}/{parquet.name}",
               "/etc/passwd", "../../../../../../etc/passwd", "//etc/passwd", "file:///etc/passwd",
               f"file://{db}", "http://127.0.0.1:%d/config" % served.app.port, "http://localhost/",
               "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.0.0.1/",
               str(db).upper(), f"{db}%00.png", f"{db}\\..\\modelsmith.db"]
    routes = []
    for target in targets:
        routes.append(f"/gradio_api/file={target}")
        routes.append(f"/gradio_api/file={quoted(target, safe='')}")            # URL-encoded
        routes.append(f"/gradio_api/file={quoted(quoted(target, safe=''), safe='')}")  # double-encoded
        routes.append(f"/gradio_api/file/{target.lstrip('/')}")                 # the deprecated /file/ route
    routes += ["/gradio_api/file=..%2f..%2fhome%2fmodelsmith.db", "/gradio_api/file=%2e%2e/%2e%2e/etc/passwd",
               "/gradio_api/file=....//....//etc/passwd", "/static/../../../etc/passwd",
               "/static/..%2f..%2f..%2fetc%2fpasswd", "/assets/..%2f..%2f..%2fetc%2fpasswd",
               f"/gradio_api/proxy=http://127.0.0.1:{served.app.port}/config",
               "/gradio_api/proxy=http://169.254.169.254/", f"/file={db}", f"/{db}"]
    return routes


def test_file_route_probes_are_refused(served):
    home_heads = [p.read_bytes()[:48] for p in served.settings.home.rglob("*")
                  if p.is_file() and p.stat().st_size > 16 and "tmp" not in p.parts]
    refused = page_fallbacks = 0
    routes = _probes(served)
    for route in routes:
        status, body = http_get(served.url + route)
        for secret in (*SECRETS, *home_heads):
            assert secret not in body, f"{route} leaked {secret[:20]!r}"
        if route.startswith(("/gradio_api/file", "/gradio_api/proxy")):
            assert 400 <= status < 500, (route, status, body[:200])
            refused += 1
        elif 400 <= status < 500:
            refused += 1
        else:  # outside the file routes an unknown path may get the app's own page, never a file
            assert status == 200 and b"<html" in body[:500].lower(), (route, status, body[:200])
            page_fallbacks += 1
    record_figures("file_probes", {"probes": len(routes), "refused_4xx": refused, "answered_with_app_page": page_fallbacks, "leaked": 0})
