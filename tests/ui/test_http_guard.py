"""The request guard on a tiny Starlette app: allowed hosts from the settings, origins, body limits, login back-off."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ui.http_guard import GuardPolicy, LoginThrottle, RequestGuard, allowed_hosts, hostname, parse_hosts


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body)})


async def login(request: Request) -> JSONResponse:
    form = await request.form()
    return JSONResponse({"ok": True}) if form.get("password") == "right" else JSONResponse({}, status_code=400)


def client(policy: GuardPolicy, host: str = "127.0.0.1") -> TestClient:
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/login", login, methods=["POST"])])
    return TestClient(RequestGuard(app, policy), base_url=f"http://{host}")


def test_allowed_hosts_come_from_the_settings(monkeypatch):
    from backend.settings import Settings
    from ui.server import guard_policy

    monkeypatch.setenv("SPACE_HOST", "me-demo.hf.space")
    settings = Settings(allowed_hosts="models.example.org, *.lan.example", share=True, _env_file=None)
    services = type("S", (), {"settings": settings, "repo": None})()
    policy = guard_policy(services)
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860", "models.example.org", "a.lan.example",
                 "me-demo.hf.space", "xyz.gradio.live"):
        assert policy.host_allowed(host), host
    for host in ("attacker.example", "lan.example.evil", "", "[bad", "models.example.org.evil"):
        assert not policy.host_allowed(host), host
    assert policy.max_body_bytes == settings.max_request_bytes
    assert not GuardPolicy(allowed_hosts=allowed_hosts()).host_allowed("xyz.gradio.live")  # only when sharing


def test_hostname_and_parse_hosts():
    assert hostname("Example.ORG:7860") == "example.org" and hostname("http://x.example:1/") == "x.example"
    assert hostname("[::1]:80") == "::1" and hostname("[bad") == ""
    assert parse_hosts(" a.example, ,B.example ") == ("a.example", "b.example")


def test_foreign_host_and_origin_are_refused():
    guarded = client(GuardPolicy())
    assert guarded.get("/echo").status_code == 200
    assert client(GuardPolicy(), host="evil.example").get("/echo").status_code == 400
    refused = guarded.post("/echo", content=b"x", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert guarded.post("/echo", content=b"x", headers={"Origin": "http://localhost:7860"}).status_code == 200


def test_body_limits_by_length_and_by_stream():
    guarded = client(GuardPolicy(max_body_bytes=1000))
    assert guarded.post("/echo", content=b"x" * 1000).json() == {"bytes": 1000}
    assert guarded.post("/echo", content=b"x" * 1001).status_code == 413
    chunks = (b"x" * 400 for _ in range(5))  # a generator body goes out chunked: no Content-Length
    answer = guarded.post("/echo", content=chunks)
    assert answer.status_code == 413 and "too large" in answer.json()["error"]
    assert guarded.post("/echo", content=b"1", headers={"Content-Length": "abc"}).status_code == 400


def test_login_back_off_per_client():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    guarded = client(GuardPolicy(login_throttle=throttle))
    wrong = [guarded.post("/login", data={"password": "wrong"}).status_code for _ in range(4)]
    assert wrong == [400, 400, 400, 400]
    waiting = guarded.post("/login", data={"password": "right"})
    assert waiting.status_code == 429 and waiting.headers["retry-after"] == "1"
    now[0] += 1.01
    assert guarded.post("/login", data={"password": "right"}).status_code == 200
    assert throttle.wait_s("testclient") == 0


@pytest.mark.parametrize("failures, wait", [(3, 0), (4, 1), (5, 2), (6, 4), (20, 60)])
def test_back_off_doubles_up_to_a_minute(failures, wait):
    throttle = LoginThrottle(clock=lambda: 0.0)
    for _ in range(failures):
        throttle.record("client", succeeded=False)
    assert throttle.wait_s("client") == wait
