"""One web server for both apps: the main Modelsmith app at / and the public demo pages at /demo/<token>/.

The demo page is a separate gr.Blocks mounted on the main app's FastAPI server (one port, one
process, one share link). Mounting at "/demo/{token}" puts the token into every request's path
parameters, so the demo page, its config and its API calls all carry it, and a gradio_client
pointed at http://host/demo/<token>/ works unchanged. The main app's login (MODELSMITH_AUTH)
does not cover /demo: a demo link is meant for people without an account.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from starlette.routing import Mount

from backend.sharing.demos import DEMO_PATH
from backend.services import Services
from backend.settings import Settings
from ui.app import CSS, THEME, launch_kwargs, private_paths
from ui.demo_page import build_demo_page
from ui.http_guard import EXCEPTION_HANDLERS, GuardPolicy, allowed_hosts, install, parse_hosts

DEMO_MOUNT = f"{DEMO_PATH}/{{token}}"


def upload_folder() -> Path:
    """Gradio's upload cache (shared by every Blocks of the process): where the main app's uploads land."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def demo_mount_options(settings: Settings) -> dict:
    """Options of the demo page: it serves no files at all, and shows errors' details only in debug.

    The demo page blocks the home dir and Gradio's upload cache: the main app's uploads must not
    be fetchable without the main app's login. An image demo takes one upload up to
    settings.demo_max_upload_mb (the guard refuses uploads for every other demo, ui/http_guard),
    and deletes it once it has predicted (ui/image_panels).
    """
    return {"server_name": settings.host, "server_port": settings.port, "show_error": settings.debug,
            "max_file_size": settings.demo_max_upload_bytes, "allowed_paths": [],
            "blocked_paths": [str(settings.home.resolve()), str(upload_folder()), *private_paths(settings)],
            "footer_links": [], "run_history": False, "enable_monitoring": False, "mcp_server": False,
            "ssr_mode": False, "theme": THEME, "css": CSS}


def demo_app_kwargs(services: Services) -> dict:
    """`app_kwargs` for the main app's launch() that serve the demo pages on the same server.

    gr.mount_gradio_app wires a Blocks into a FastAPI app (its routes and the lifespan that
    starts its queue); we let it do so on a throwaway FastAPI app, then hand that Mount and
    lifespan to the server launch() builds, so the main app keeps launch()'s options (share
    link, login) and the demo routes are tried first. The same lifespan puts the request guard
    (ui.http_guard) in front of the whole server, and both apps answer an unknown fn_index with 400.
    """
    holder = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    gr.mount_gradio_app(holder, build_demo_page(services), path=DEMO_MOUNT,
                        app_kwargs={"exception_handlers": dict(EXCEPTION_HANDLERS)},
                        **demo_mount_options(services.settings))
    mount = next(route for route in holder.router.routes if isinstance(route, Mount))
    demo_lifespan = holder.router.lifespan_context
    policy = guard_policy(services)

    @asynccontextmanager
    async def lifespan(app):
        install(app, policy)  # before the server accepts its first connection
        async with demo_lifespan(app):
            yield

    return {"routes": [mount], "lifespan": lifespan, "exception_handlers": dict(EXCEPTION_HANDLERS)}


def guard_policy(services: Services) -> GuardPolicy:
    """Hosts, body limits and demo uploads the server accepts (ui.http_guard), from the settings."""
    settings = services.settings
    return GuardPolicy(
        allowed_hosts=allowed_hosts(parse_hosts(settings.allowed_hosts), space_host=os.environ.get("SPACE_HOST"),
                                    share=settings.share, bind_host=settings.host),
        max_body_bytes=settings.max_request_bytes, max_upload_bytes=settings.max_upload_bytes,
        max_demo_upload_bytes=settings.demo_max_upload_bytes,
        demo_takes_files=lambda token: services.demo_takes_files(token))


def server_kwargs(services: Services) -> dict:
    """Everything the main Blocks' launch() needs: the safe launch options plus the demo pages."""
    return launch_kwargs(services.settings) | {"app_kwargs": demo_app_kwargs(services)}
