"""build_app(services) -> gr.Blocks: a header, then one tab per *_tab module."""

from __future__ import annotations

from functools import partial

import gradio as gr

from backend.services import Services, device_description
from backend.settings import Settings
from ui.data_tab import build_data_tab, on_page_load
from ui.playground_tab import build_playground_tab, on_refresh_runs
from ui.runs_tab import build_runs_tab, on_refresh_list
from ui.train_tab import build_train_tab

HEADER_REFRESH_SECONDS = 3.0
CSS = """
.ms-header {display:flex; justify-content:space-between; align-items:baseline}
.ms-muted {color:#6b7280}
.ms-error {border-left:4px solid #dc2626; padding-left:8px}
footer {visibility: hidden}
"""
THEME = gr.themes.Soft(primary_hue="indigo")


def header_html(services: Services, device: str) -> str:
    """Title, device in use and queue length."""
    queued = services.runner.queue_length()
    running = len(services.repo.list_runs("running"))
    return (f"<div class='ms-header'><h1 style='margin:0'>Modelsmith</h1>"
            f"<div><b>Device:</b> {device} · <b>Training:</b> {running} · <b>Queued:</b> "
            f"<span class='ms-queue'>{queued}</span></div></div>"
            "<div class='ms-muted'>Turn your own text data into a model: upload, train, try, share.</div>")


def build_app(services: Services) -> gr.Blocks:
    """The whole UI; every handler gets `services` bound, so handlers stay plain functions."""
    device = device_description(services.settings)
    with gr.Blocks(title="Modelsmith", analytics_enabled=False) as demo:
        header = gr.HTML(header_html(services, device))
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Data", id="data"):
                data_placeholder = gr.Column()  # filled below, once the Train tab's dataset picker exists
            with gr.Tab("2 · Train", id="train"):
                train_form = build_train_tab(services)
            with gr.Tab("3 · Runs", id="runs"):
                status_filter, run_picker, run_list_outputs = build_runs_tab(services, train_form, tabs)
            with gr.Tab("4 · Playground", id="playground") as playground_tab:
                playground_runs = build_playground_tab(services)
        with data_placeholder:
            datasets_table, dataset_picker = build_data_tab(services, [train_form.dataset])
        # Components are built once per process; a (re)loaded page must show what was stored since.
        demo.load(partial(on_page_load, services), train_form.dataset,
                  [datasets_table, dataset_picker, train_form.dataset], api_visibility="private")
        demo.load(partial(on_refresh_list, services), [status_filter, run_picker], run_list_outputs,
                  api_visibility="private")
        demo.load(partial(on_refresh_runs, services), playground_runs, playground_runs, api_visibility="private")
        timer = gr.Timer(HEADER_REFRESH_SECONDS)
        timer.tick(partial(header_html, services, device), None, header, api_visibility="private",
                   show_progress="hidden", queue=False)
        playground_tab.select(partial(on_refresh_runs, services), playground_runs, playground_runs,
                              api_visibility="private")
    return demo


def parse_auth(value: str) -> list[tuple[str, str]] | None:
    """'user:pass,user2:pass2' -> [(user, pass), ...]; empty -> None (no login)."""
    pairs = []
    for item in filter(None, (part.strip() for part in (value or "").split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("MODELSMITH_AUTH must look like 'user:password,user2:password2'.")
        pairs.append((user, password))
    return pairs or None


def launch_kwargs(settings: Settings) -> dict:
    """Safe launch options: loopback by default, upload limit, no extra paths, errors hidden unless debug."""
    return {"server_name": settings.host, "server_port": settings.port, "share": settings.share,
            "auth": parse_auth(settings.auth), "max_file_size": settings.max_upload_bytes,
            "show_error": settings.debug, "enable_monitoring": False, "allowed_paths": [],
            "blocked_paths": [str(settings.home.resolve())], "footer_links": [], "theme": THEME, "css": CSS}
