"""build_app(services) -> gr.Blocks: a header, then one tab per *_tab module; launch_kwargs(settings)."""

from __future__ import annotations

import html
from functools import partial

import gradio as gr

from backend.services import Services
from backend.settings import Settings
from backend.serving.startup import device_if_loaded
from ui.data_tab import build_data_tab, on_page_load
from ui.playground_tab import build_playground_tab, on_pick_run, on_refresh_runs, predictions_dir
from ui.runs_tab import TITLE_JS, build_runs_tab, on_refresh_list, watch_runs
from ui.share_tab import build_share_tab
from ui.share_tab import on_refresh_runs as on_refresh_share_runs
from ui.train_tab import build_train_tab

HEADER_REFRESH_SECONDS = 3.0
CSS = """
.ms-header {display:flex; justify-content:space-between; align-items:center; gap:16px; flex-wrap:wrap}
.ms-header h1 {margin:0; font-size:1.6rem}
.ms-status {display:flex; gap:8px; flex-wrap:wrap}
.ms-pill {border:1px solid var(--border-color-primary); border-radius:999px; padding:2px 10px; font-size:0.9rem;
          background:var(--block-background-fill)}
.ms-muted {color:var(--body-text-color-subdued)}
.ms-error {border-left:4px solid #dc2626; background:rgba(220,38,38,0.06); padding:8px 12px; border-radius:4px}
.ms-confusion table {border-collapse:collapse; margin-top:6px}
.ms-confusion th, .ms-confusion td {border:1px solid var(--border-color-primary); padding:6px 12px; text-align:center}
.ms-confusion .ms-corner {font-weight:normal; color:var(--body-text-color-subdued); font-size:0.85em}
.ms-caption {font-size:0.9em; color:var(--body-text-color-subdued)}
footer {visibility: hidden}
"""
THEME = gr.themes.Soft(primary_hue="indigo")


def header_html(services: Services, device: str | None = None) -> str:
    """Title, the device training uses (once torch is loaded), and how many runs train and wait."""
    device = device or device_if_loaded(services.settings) or "loading…"
    queued = services.runner.queue_length()
    running = len(services.list_runs("running"))
    return (f"<div class='ms-header'><div><h1>Modelsmith</h1>"
            "<div class='ms-muted'>Turn your own texts, images and tables into a model: upload, train, try.</div></div>"
            f"<div class='ms-status'><span class='ms-pill'>Device: <b>{html.escape(device)}</b></span>"
            f"<span class='ms-pill'>Training: <b class='ms-running'>{running}</b></span>"
            f"<span class='ms-pill'>Queued: <b class='ms-queue'>{queued}</b></span></div></div>")


def build_app(services: Services) -> gr.Blocks:
    """The whole UI; every handler gets `services` bound, so handlers stay plain functions."""
    private = {"api_visibility": "private"}
    with gr.Blocks(title="Modelsmith", analytics_enabled=False) as demo:
        header = gr.HTML(header_html(services), elem_id="header")
        # Runs that ended while the page is open: a toast and the tab title, whichever tab is shown.
        # Outside the tabs: a tab's components only work once the tab was opened, and a hidden
        # Textbox, not a gr.State: a State set from the server does not run browser-side code.
        run_notice = gr.Textbox(visible=False)
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Data", id="data"):
                data_placeholder = gr.Column()  # filled below, once the Train tab's dataset picker exists
            with gr.Tab("2 · Train", id="train"):
                train_form = build_train_tab(services)
            with gr.Tab("3 · Runs", id="runs"):
                status_filter, run_picker, run_list_outputs, list_shown = build_runs_tab(services, train_form, tabs)
            with gr.Tab("4 · Playground", id="playground") as playground_tab:
                playground_runs, playground_examples, waits_for_page = build_playground_tab(services)
            with gr.Tab("5 · Share", id="share") as share_tab:
                share_runs, show_links, link_outputs = build_share_tab(services)
        with data_placeholder:
            datasets_table, dataset_picker = build_data_tab(services, train_form.dataset)
        # Components are built once per process; a (re)loaded page must show what was stored since.
        demo.load(partial(on_page_load, services), train_form.dataset,
                  [datasets_table, dataset_picker, train_form.dataset], **private)
        demo.load(partial(on_refresh_list, services), [status_filter, run_picker, list_shown], run_list_outputs,
                  **private)
        # The Playground's controls come on once this refresh is done (see build_playground_tab).
        demo.load(partial(on_refresh_runs, services), playground_runs, playground_runs, **private).then(
            partial(on_pick_run, services), playground_runs, playground_examples, **private).then(
            lambda: [gr.update(interactive=True)] * len(waits_for_page), None, waits_for_page, **private)
        timer = gr.Timer(HEADER_REFRESH_SECONDS)
        # Open as long as the page: toasts for runs that end (concurrency_limit=None: one per page).
        demo.load(partial(watch_runs, services, HEADER_REFRESH_SECONDS), None, run_notice, show_progress="hidden",
                  concurrency_limit=None, **private)
        run_notice.change(None, run_notice, None, js=TITLE_JS, **private)  # the tab title, in the browser only
        timer.tick(partial(header_html, services), None, header, show_progress="hidden", queue=False,
                   **private)
        # A run that ends is listed in the Playground's and Share's pickers at once (run_notice), not
        # only when their tab is opened again: someone waiting on the Playground sees it come.
        for trigger in (playground_tab.select, run_notice.change):
            trigger(partial(on_refresh_runs, services), playground_runs, playground_runs, **private)
        for trigger in (demo.load, share_tab.select, run_notice.change):  # runs that finished (or were imported) since
            trigger(partial(on_refresh_share_runs, services), share_runs, share_runs, **private).then(
                show_links, share_runs, link_outputs, **private)
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


def private_paths(settings: Settings) -> list[str]:
    """What the web server must never hand out: the database files, stored datasets and models."""
    database = (settings.home / "modelsmith.db").resolve()
    return [str(settings.datasets_dir.resolve()), str(settings.runs_dir.resolve()),
            *(f"{database}{suffix}" for suffix in ("", "-wal", "-shm", "-journal"))]


def launch_kwargs(settings: Settings) -> dict:
    """Safe launch options: loopback by default, upload limit, private files blocked, errors hidden unless debug."""
    return {"server_name": settings.host, "server_port": settings.port, "share": settings.share,
            "auth": parse_auth(settings.auth), "max_file_size": settings.max_upload_bytes,
            "show_error": settings.debug, "enable_monitoring": False,
            # Batch predictions are written to <home>/tmp for download; nothing else of the home dir.
            "allowed_paths": [str(predictions_dir(settings).resolve())], "blocked_paths": private_paths(settings),
            # No run-history page: it records calls (people's texts) and offers to sync them to a Hub bucket.
            "footer_links": [], "run_history": False, "mcp_server": False, "theme": THEME, "css": CSS}
