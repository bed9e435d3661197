"""Hostile HTTP traffic against the running app: huge bodies, foreign hosts and origins, anonymous demo uploads."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.reliability.support import record_figures

pytestmark = [pytest.mark.slow]  # against the running app (a `python app.py` process)

FLOOD_BODIES = 20
FLOOD_BODY_MB = 50
CHUNK = 1024 * 1024


def _connect(served) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.app.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body so far) of the response on `sock`; (0, {}, b'') when it was closed."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except (ConnectionResetError, socket.timeout):
        pass
    if b"\r\n\r\n" not in data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0") or 0)
    try:
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    except (ConnectionResetError, socket.timeout):
        pass
    return int(lines[0].split()[1]), headers, body


def _send_body(sock: socket.socket, size: int, chunked: bool) -> int:
    """Send `size` bytes of JSON-looking body (chunked or plain); the bytes sent before the server stopped us."""
    block = b"A" * CHUNK
    sent = 0
    try:
        while sent < size:
            piece = block[:min(CHUNK, size - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def _post(served, path: str, size: int, *, chunked: bool = False, headers: dict | None = None):
    """POST a `size`-byte body; (status, headers, body, bytes sent)."""
    base = {"Host": f"127.0.0.1:{served.app.port}", "Content-Type": "application/json", "Connection": "close"}
    base |= {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    with _connect(served) as sock:
        sock.sendall(_head("POST", path, base | (headers or {})))
        sent = _send_body(sock, size, chunked)
        status, answer_headers, body = _read_answer(sock)
    return status, answer_headers, body, sent


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _get(served, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    with _connect(served) as sock:
        sock.sendall(_head("GET", path, {"Connection": "close"} | headers))
        return _read_answer(sock)


def test_oversized_body_is_refused_before_it_is_read(served):
    """Content-Length over the limit: 413 after the headers alone, on the main app and on a demo mount."""
    size = 50 * 1024 * 1024
    for path in ("/gradio_api/queue/join", "/demo/not-a-token-0123456789/gradio_api/queue/join", "/login"):
        with _connect(served) as sock:
            sock.sendall(_head("POST", path, {"Host": f"127.0.0.1:{served.app.port}", "Content-Length": str(size),
                                              "Content-Type": "application/json", "Connection": "close"}))
            started = time.monotonic()
            status, _, body = _read_answer(sock)  # nothing of the body sent: the answer must not wait for it
        assert status == 413, (path, status, body[:200])
        assert time.monotonic() - started < 10
        assert "too large" in json.loads(body)["error"]


def test_streamed_body_is_cut_off_at_the_limit(served):
    """Chunked encoding has no Content-Length: the server counts what arrives and answers 413."""
    limit = served.settings.max_request_bytes
    status, _, body, _ = _post(served, "/demo/not-a-token-0123456789/gradio_api/queue/join", limit + 3 * CHUNK,
                               chunked=True)
    assert status == 413, (status, body[:200])
    # A small chunked body still goes through to Gradio (which answers it: here, a bad request)
    status, _, body, _ = _post(served, "/gradio_api/queue/join", 1000, chunked=True)
    assert status not in (0, 413), (status, body[:200])


def test_body_flood_leaves_memory_flat(served):
    """20 x 50 MB bodies (half Content-Length, half chunked) to the main app and a demo mount: RSS grows < 100 MB."""
    pid = served.app.process.pid
    _post(served, "/gradio_api/queue/join", 1000)  # warm the route up before measuring
    before = _rss_mb(pid)
    statuses, started = [], time.monotonic()
    for i in range(FLOOD_BODIES):
        path = "/gradio_api/queue/join" if i % 2 else "/demo/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/gradio_api/queue/join"
        status, *_ = _post(served, path, FLOOD_BODY_MB * 1024 * 1024, chunked=i % 4 >= 2)
        statuses.append(status)
    seconds = time.monotonic() - started
    time.sleep(1.0)
    growth = _rss_mb(pid) - before
    assert served.app.alive(), served.app.log_tail()
    assert all(status in (0, 413) for status in statuses), statuses  # 0: closed on us after the 413 went out
    assert statuses.count(413) >= FLOOD_BODIES // 2, statuses
    assert growth < 100, f"RSS grew by {growth:.0f} MB"
    record_figures("body_flood", {"bodies": FLOOD_BODIES, "body_mb": FLOOD_BODY_MB, "rss_before_mb": round(before),
                                  "rss_growth_mb": round(growth, 1), "answered_413": statuses.count(413),
                                  "seconds": round(seconds, 1), "limit_mb": served.settings.max_request_mb})


def test_foreign_host_is_refused(served):
    """DNS rebinding: the attacker's page reaches 127.0.0.1 under its own host name, which is refused."""
    for host in ("attacker.example", "attacker.example:%d" % served.app.port, "127.0.0.1.nip.io", "[bad"):
        status, _, body = _get(served, "/config", {"Host": host})
        assert status == 400, (host, status, body[:200])
    for host in (f"127.0.0.1:{served.app.port}", f"localhost:{served.app.port}"):
        status, _, body = _get(served, "/config", {"Host": host})
        assert status == 200, (host, status, body[:200])


def test_foreign_origin_gets_no_cors_and_no_call(served):
    """A page on another site calling the API: refused, and no Access-Control-Allow-Origin for it."""
    host = {"Host": f"127.0.0.1:{served.app.port}"}
    foreign = "http://attacker.example"
    status, headers, _ = _get(served, "/config", host | {"Origin": foreign})
    assert status == 403 and "access-control-allow-origin" not in headers, (status, headers)
    with _connect(served) as sock:
        sock.sendall(_head("OPTIONS", "/gradio_api/queue/join", host | {
            "Origin": foreign, "Access-Control-Request-Method": "POST", "Connection": "close"}))
        status, headers, _ = _read_answer(sock)
    assert headers.get("access-control-allow-origin") != foreign, headers
    payload = json.dumps({"data": [], "fn_index": 0, "session_hash": "x" * 10}).encode()
    with _connect(served) as sock:
        sock.sendall(_head("POST", "/gradio_api/queue/join", host | {
            "Origin": foreign, "Content-Type": "application/json", "Content-Length": str(len(payload)),
            "Connection": "close"}) + payload)
        status, headers, _ = _read_answer(sock)
    assert status == 403 and "access-control-allow-origin" not in headers, (status, headers)
    # The app's own page (same origin) still works.
    status, _, _ = _get(served, "/config", host | {"Origin": f"http://127.0.0.1:{served.app.port}"})
    assert status == 200


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "modelsmithboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(served, path: str, content: bytes) -> tuple[int, bytes]:
    body, content_type = _multipart("probe.txt", content)
    with _connect(served) as sock:
        sock.sendall(_head("POST", path, {"Host": f"127.0.0.1:{served.app.port}", "Content-Type": content_type,
                                          "Content-Length": str(len(body)), "Connection": "close"}) + body)
        status, _, answer = _read_answer(sock)
    return status, answer


def _cached_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_demo_mount_takes_no_anonymous_uploads(served):
    """/demo/<token>/gradio_api/upload: refused for a made-up token and for a valid text-model token."""
    from backend.sharing.demos import publish_demo, revoke_demo

    demo = publish_demo(served.services.repo, served.run_id)
    try:
        before = _cached_files(served.upload_dir)
        for token in ("not-a-token", "A" * 32, demo.token):
            for _ in range(3):
                status, answer = _upload(served, f"/demo/{token}/gradio_api/upload", b"x" * 200_000)
                assert status == 403, (token, status, answer[:200])
        assert _cached_files(served.upload_dir) == before
        # The main app's own upload route still works (the Data tab needs it).
        status, answer = _upload(served, "/gradio_api/upload", b"message,verdict\nhi,happy\n")
        assert status == 200, (status, answer[:200])
    finally:
        revoke_demo(served.services.repo, demo.id)


def _join(served, prefix: str, fn_index) -> tuple[int, bytes]:
    payload = json.dumps({"data": ["hi"], "fn_index": fn_index, "session_hash": "probe12345"}).encode()
    with _connect(served) as sock:
        sock.sendall(_head("POST", f"{prefix}/gradio_api/queue/join", {
            "Host": f"127.0.0.1:{served.app.port}", "Content-Type": "application/json",
            "Content-Length": str(len(payload)), "Connection": "close"}) + payload)
        status, _, body = _read_answer(sock)
    return status, body


def test_unknown_fn_index_is_a_bad_request_not_a_crash(served):
    """Out-of-range and negative fn_index: HTTP 400 with a message (was 500), on the main app and a demo mount."""
    for prefix in ("", "/demo/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"):
        for fn_index in (10**6, -1, 2**70):
            status, body = _join(served, prefix, fn_index)
            assert status == 400, (prefix, fn_index, status, body[:200])
            assert "fn_index" in json.loads(body)["error"]


def test_forged_forwarded_host_does_not_change_the_demo_link(served):
    """X-Forwarded-Host from a client (no proxy configured) is ignored; the Host header (checked) counts."""
    from types import SimpleNamespace

    from ui.share_tab import base_url

    forged = SimpleNamespace(headers={"host": f"127.0.0.1:{served.app.port}", "x-forwarded-host": "evil.example",
                                      "x-forwarded-proto": "https"}, url=SimpleNamespace(scheme="http"))
    assert base_url(served.settings, forged) == f"http://127.0.0.1:{served.app.port}"
    status, _, _ = _get(served, "/config", {"Host": "evil.example"})
    assert status == 400  # and a forged Host never reaches the handler that builds the link


def _login(port: int, password: str) -> tuple[int, dict[str, str]]:
    form = f"username=alice&password={password}".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_head("POST", "/login", {"Host": f"127.0.0.1:{port}", "Connection": "close",
                                              "Content-Type": "application/x-www-form-urlencoded",
                                              "Content-Length": str(len(form))}) + form)
        status, headers, _ = _read_answer(sock)
    return status, headers


def test_wrong_passwords_slow_the_client_down(tmp_path):
    """MODELSMITH_AUTH: 3 free wrong passwords, then the client waits (429, Retry-After) before each next try."""
    from tests.reliability.support import AppProcess, free_port

    app = AppProcess(tmp_path / "home", free_port(), tmp_path / "work",
                     env={"MODELSMITH_AUTH": "alice:s3cret", "GRADIO_TEMP_DIR": str(tmp_path / "uploads")})
    app.start()
    try:
        app.wait_ready()
        statuses = [_login(app.port, "wrong")[0] for _ in range(4)]
        assert statuses == [400, 400, 400, 400], statuses
        status, headers = _login(app.port, "wrong")
        assert status == 429 and int(headers["retry-after"]) >= 1, (status, headers)
        status, _ = _login(app.port, "s3cret")  # even the right password waits its turn
        assert status == 429
        time.sleep(int(headers["retry-after"]) + 0.2)
        assert _login(app.port, "s3cret")[0] == 200
        assert _login(app.port, "wrong")[0] == 400  # a success clears the count
        record_figures("login_throttle", {"free_tries": 3, "first_wait_s": 1, "max_wait_s": 60})
    finally:
        app.stop()


@pytest.mark.browser
def test_a_browser_still_uses_the_guarded_app(served):
    """Chromium loads the page and predicts through the guard: its own origin is never refused."""
    chromium_path = Path("/usr/bin/chromium")
    if not chromium_path.exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    refused = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.on("response", lambda r: refused.append((r.status, r.url)) if r.status in (400, 403, 413) else None)
            posts = []
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            page.goto(served.url)
            page.get_by_text("Turn your own texts").wait_for()
            page.wait_for_timeout(4000)  # the page's load events and header-timer polls: POSTs with its Origin
        finally:
            browser.close()
    assert refused == [] and posts, (refused, posts[:5])
