"""The outermost layer of the web server: which requests reach Gradio at all.

A pure ASGI middleware (Starlette's pattern) in front of every route, the demo mounts included:
- **Host**: only the names this app is reached by (loopback names, MODELSMITH_ALLOWED_HOSTS, the
  Space's host on Spaces, Gradio's share domain when sharing). A DNS-rebinding page sends its own
  host name, so it gets 400 before any handler runs.
- **Origin**: a browser request from another site's page (it carries that site's Origin) gets 403,
  and no response ever grants CORS to a foreign origin. Gradio's own CORS layer echoes any Origin
  when the Host is not a loopback name, which is why this check sits outside it.
- **Body size**: a body over the route's limit gets 413 before it is read (by Content-Length), or
  as soon as the streamed (chunked) bytes pass the limit; the bytes past the limit are never kept.
- **Demo uploads**: /demo/<token>/gradio_api/upload accepts a file only for a token whose model
  takes files (an image demo), up to MODELSMITH_DEMO_MAX_UPLOAD_MB; a revoked, expired or unknown
  token, or a text model's, gets 403 before a byte of the file is stored.
- **Login**: after a few wrong passwords a client waits before its next try (LoginThrottle), twice
  as long after each further failure; a right password clears its count.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SHARE_HOSTS = ("*.gradio.live",)  # Gradio's share links reach the app under this domain
UPLOAD_ROUTE = "/gradio_api/upload"
DEMO_UPLOAD = re.compile(r"^/demo/(?P<token>[^/]*)/gradio_api/upload/?$")
MULTIPART_SLACK = 1024 * 1024  # form boundaries and headers around an uploaded file


LOGIN_ROUTE = "/login"


class LoginThrottle:
    """Per-client back-off for the login form: FREE_TRIES wrong passwords, then 1 s, 2 s, 4 s ... up to MAX_WAIT_S."""

    FREE_TRIES = 3
    FIRST_WAIT_S = 1.0
    MAX_WAIT_S = 60.0
    MAX_CLIENTS = 10_000  # the oldest entries go first: a flood of addresses cannot fill the memory

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures, wait until)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds `client` must still wait before its next login attempt (0 when it may try now)."""
        with self._lock:
            _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - self._clock())

    def record(self, client: str, succeeded: bool) -> None:
        """Count a failed attempt (and set the next wait), or forget the client after a success."""
        with self._lock:
            if succeeded:
                self._failures.pop(client, None)
                return
            failures = self._failures.pop(client, (0, 0.0))[0] + 1
            extra = failures - self.FREE_TRIES
            wait = min(self.MAX_WAIT_S, self.FIRST_WAIT_S * 2 ** (extra - 1)) if extra > 0 else 0.0
            self._failures[client] = (failures, self._clock() + wait)
            while len(self._failures) > self.MAX_CLIENTS:
                self._failures.popitem(last=False)


class BodyTooLarge(Exception):
    """Raised inside the app's receive() once a streamed body passes its limit."""


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard lets through; built from Settings by ui.server.guard_policy."""

    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    max_body_bytes: int = 10 * 1024 * 1024  # any route but the upload routes
    max_upload_bytes: int = 200 * 1024 * 1024  # the main app's upload route
    max_demo_upload_bytes: int = 1024 * 1024
    demo_takes_files: Callable[[str], bool] = field(default=lambda token: False)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def host_allowed(self, host: str | None) -> bool:
        """True when `host` (a Host header or an origin's host name, port ignored) is one of ours."""
        name = hostname(host or "")
        return bool(name) and any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.allowed_hosts)

    def body_limit(self, path: str) -> int:
        if path.rstrip("/") == UPLOAD_ROUTE:
            return self.max_upload_bytes + MULTIPART_SLACK
        if DEMO_UPLOAD.match(path):
            return self.max_demo_upload_bytes + MULTIPART_SLACK
        return self.max_body_bytes


def hostname(value: str) -> str:
    """'Example.org:7860' -> 'example.org'; '[::1]:7860' -> '::1'; 'http://x:1' -> 'x'; '' when unparsable."""
    value = value.strip()
    if "://" not in value:
        value = "//" + value
    try:
        return (urlsplit(value).hostname or "").lower()
    except ValueError:  # e.g. an unbalanced '[' in a forged header
        return ""


def parse_hosts(value: str) -> tuple[str, ...]:
    """'a.example, *.b.example' -> ('a.example', '*.b.example')."""
    return tuple(part.strip().lower() for part in (value or "").split(",") if part.strip())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _answer(send: Send, status: int, message: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(extra_headers or [])]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware applying a GuardPolicy to every HTTP and WebSocket request."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _answer(send, *refusal)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"].rstrip("/") == LOGIN_ROUTE:
            await self._login(scope, receive, send)
            return
        await self._limited(scope, receive, send, self.policy.body_limit(scope["path"]))

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let a login attempt through unless its client must wait; count whether it failed."""
        client = (scope.get("client") or ("unknown", 0))[0]
        throttle = self.policy.login_throttle
        wait = throttle.wait_s(client)
        if wait > 0:
            await _answer(send, 429, f"Too many wrong passwords: wait {wait:.0f} s before the next try.",
                          [(b"retry-after", str(max(1, round(wait))).encode())])
            return
        status = {"code": 500}

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._limited(scope, receive, noting_send, self.policy.body_limit(scope["path"]))
        finally:
            throttle.record(client, succeeded=status["code"] < 400)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must not reach the app; None when it may."""
        if not self.policy.host_allowed(_header(scope, b"host")):
            return 400, ("This server does not answer to that host name. Open it by an address it was configured "
                         "for (MODELSMITH_ALLOWED_HOSTS).")
        origin = _header(scope, b"origin")
        if origin is not None and not self.policy.host_allowed(origin):
            return 403, "Requests from other web sites are refused."
        match = DEMO_UPLOAD.match(scope["path"])
        if match and not self.policy.demo_takes_files(match["token"]):
            return 403, "This demo link does not take files."
        length = _header(scope, b"content-length")
        limit = self.policy.body_limit(scope["path"])
        if length is not None:
            if not length.strip().isdigit():
                return 400, "Content-Length is not a number."
            if int(length) > limit:
                return 413, self.too_large(scope["path"], int(length))
        return None

    def too_large(self, path: str, size: int | None = None) -> str:
        """The 413 message: a demo visitor learns the file limit in MB; others the byte limit."""
        limit = self.policy.body_limit(path)
        if DEMO_UPLOAD.match(path):
            cap = self.policy.max_demo_upload_bytes / 2**20
            got = f"this one is {size / 2**20:.1f} MB" if size is not None else "this one is larger"
            return (f"The file is too large: this demo takes files up to {cap:g} MB, {got}. Send a smaller image "
                    "(or resize it); the demo's owner sets the limit with MODELSMITH_DEMO_MAX_UPLOAD_MB.")
        if size is None:
            return f"The request is too large: more than {limit:,} bytes."
        return f"The request is too large: {size:,} bytes, the limit is {limit:,}."

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, counting the body as it streams in; over the limit, answer 413 instead of the app."""
        state = {"received": 0, "too_big": False, "started": False}

        async def counting_receive() -> Message:
            if state["too_big"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["too_big"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["too_big"]:
                return  # the app's answer to a cut-off body (often a 400 or 500) is replaced by our 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not state["too_big"]:
                raise
        if state["too_big"] and not state["started"]:
            await _answer(send, 413, self.too_large(scope["path"]))


def install(app, policy: GuardPolicy) -> None:
    """Put a RequestGuard in front of a Starlette app's whole middleware stack (Gradio's CORS layer included).

    Gradio adds its middleware while launch() builds the app, so there is no earlier point to
    add ours as the outermost one; the app's lifespan runs before the server accepts connections,
    and calls this with the built stack.
    """
    stack = app.middleware_stack or app.build_middleware_stack()
    if not isinstance(stack, RequestGuard):
        app.middleware_stack = RequestGuard(stack, policy)


def allowed_hosts(extra: Iterable[str] = (), space_host: str | None = None, share: bool = False,
                  bind_host: str | None = None) -> tuple[str, ...]:
    """The host names the app answers to: loopback, the bind address, configured extras, Space, share."""
    hosts = list(LOOPBACK_HOSTS)
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        hosts.append(bind_host.lower())
    hosts += [hostname(host) or host for host in extra]
    if space_host:
        hosts.append(hostname(space_host))
    if share:
        hosts += SHARE_HOSTS
    return tuple(dict.fromkeys(hosts))


async def unknown_function(request: Request, exc: KeyError) -> Response:
    """400 for a call naming a function the app does not have (Gradio looks `fn_index` up unchecked: HTTP 500)."""
    key = exc.args[0] if exc.args else None
    if isinstance(key, int) and "/gradio_api/" in request.url.path:
        return JSONResponse({"error": f"fn_index {str(key)[:40]} names no function of this app. Read the valid "
                                      "endpoints from the page's 'Use via API' link, or use gradio_client."},
                            status_code=400)
    raise exc  # any other KeyError is a bug: Starlette's error layer logs it and answers 500


EXCEPTION_HANDLERS = {KeyError: unknown_function}
