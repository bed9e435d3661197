"""Share tab: public demo links of a run (publish, list, revoke), model downloads, Space export, Hub, import."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.sharing.demos import MAX_EXPIRY_HOURS, demo_path
from backend.errors import UserError
from backend.sharing.export import export_zip
from backend.sharing.space import export_space
from backend.services import DemoRecord, Services, utcnow
from backend.settings import Settings
from ui.downloads import download_when_ready
from ui.errors import shows_errors, unchanged
from ui.formatting import run_choices
from ui.playground_tab import fresh_download_folder

LINK_COLUMNS = ["link", "URL", "created", "expires", "status"]
SHARE_WARNING = ("**MODELSMITH_SHARE is on:** this whole app has a public Gradio share link. Anyone who has it "
                 "can see every dataset and run, train and delete. Turn it off, or set MODELSMITH_AUTH.")


def _succeeded(services: Services):
    return services.list_runs("succeeded")


def _run(services: Services, run_id):
    if not run_id:
        raise UserError("Pick a finished run first (the Runs tab shows which ones succeeded).")
    return services.get_run(int(run_id))


def base_url(settings: Settings, request: gr.Request | None = None) -> str:
    """The address people reach this app at: from the browser's request when there is one, else the settings.

    X-Forwarded-* headers count only behind our own proxy (MODELSMITH_TRUST_PROXY, or a Space): anyone
    else could forge them and put their own address into the demo link a person copies.
    """
    headers = getattr(request, "headers", None) or {}
    trusted = settings.trusts_forwarded_headers
    host = (trusted and headers.get("x-forwarded-host")) or headers.get("host")
    if host:
        scheme = ((trusted and headers.get("x-forwarded-proto"))
                  or getattr(getattr(request, "url", None), "scheme", None) or "http")
        return f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def demo_url(base: str, token: str) -> str:
    """The full link of a demo page (with the trailing slash Gradio's page expects)."""
    return f"{base.rstrip('/')}{demo_path(token)}/"


def _when(moment: datetime | None, empty: str) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else empty


def links_table(demos: list[DemoRecord], base: str, now: datetime | None = None) -> pd.DataFrame:
    """One row per demo link of a run: its number, URL, created, expires and status."""
    now = now or utcnow()
    rows = [{"link": demo.id, "URL": demo_url(base, demo.token), "created": _when(demo.created_at, ""),
             "expires": _when(demo.expires_at, "never"), "status": demo.status(now)} for demo in demos]
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def _link_choices(demos: list[DemoRecord], now: datetime) -> list[tuple[str, int]]:
    return [(f"#{demo.id} · created {_when(demo.created_at, '?')}", demo.id) for demo in demos
            if demo.status(now) == "active"]


def _links_view(services: Services, run_id, request: gr.Request | None):
    """The links table and the revoke picker of one run."""
    if not run_id:
        return links_table([], ""), gr.update(choices=[], value=None)
    demos = services.list_demos(int(run_id))
    now = utcnow()
    choices = _link_choices(demos, now)
    return (links_table(demos, base_url(services.settings, request), now),
            gr.update(choices=choices, value=choices[0][1] if choices else None))


def on_refresh_runs(services: Services, selected):
    """The succeeded runs (classifiers and generators) to share, keeping the choice when it is still there."""
    runs = _succeeded(services)
    ids = {r.id for r in runs}
    return gr.update(choices=run_choices(runs), value=selected if selected in ids else (runs[0].id if runs else None))


def on_copy_link(services: Services, run_id, request: gr.Request | None = None):
    """The run's newest active demo link in a box with a copy button (hidden when it has none)."""
    if not run_id:
        return gr.update(value="", visible=False)
    now = utcnow()
    active = [demo for demo in services.list_demos(int(run_id)) if demo.status(now) == "active"]
    if not active:
        return gr.update(value="", visible=False)
    newest = max(active, key=lambda demo: demo.id)
    return gr.update(value=demo_url(base_url(services.settings, request), newest.token), visible=True)


@shows_errors(fallback=unchanged(3))
def on_pick_run(services: Services, run_id, request: gr.Request | None = None):
    """The picked run's demo links (and no message left over from another run)."""
    return ("", *_links_view(services, run_id, request))


def _publish_failed(message: str):
    return f"<div class='ms-error'>{message}</div>", gr.skip(), gr.skip()


@shows_errors(fallback=_publish_failed)
def on_publish(services: Services, run_id, expiry_hours, request: gr.Request | None = None):
    """Create a demo link; returns the message with its URL, the refreshed table and revoke picker."""
    run = _run(services, run_id)
    if expiry_hours is not None and expiry_hours < 0:
        raise UserError(f"Expiry cannot be negative (got {expiry_hours:g}). Use 0 for a link that never expires, "
                        f"or up to {MAX_EXPIRY_HOURS} hours.")
    demo = services.publish_demo(run.id, expiry_hours or None)
    url = demo_url(base_url(services.settings, request), demo.token)
    expires = f"It expires on {_when(demo.expires_at, '')}." if demo.expires_at else "It never expires."
    message = (f"Demo link of **{run.name}** (run #{run.id}) is live: [{url}]({url})\n\n{expires} "
               "Anyone with the link can try this model, and nothing else; revoke it below to turn it off.")
    return (message, *_links_view(services, run.id, request))


@shows_errors(fallback=unchanged(3))
def on_revoke(services: Services, run_id, demo_id, request: gr.Request | None = None):
    """Turn the picked demo link off at once; returns a message, the refreshed table and picker."""
    run = _run(services, run_id)
    if not demo_id:
        raise UserError("Pick an active link to revoke (the list shows the run's active links).")
    services.revoke_demo(int(demo_id), run.id)
    message = f"Demo link #{int(demo_id)} is off: its page now says the demo is not available."
    return (message, *_links_view(services, run.id, request))


@shows_errors
def on_download(services: Services, run_id) -> str:
    """Write the run's model as a zip and hand it to the browser."""
    run = _run(services, run_id)
    return str(export_zip(run, fresh_download_folder(services.settings, "export", "zip")).path)


@shows_errors
def on_export_space(services: Services, run_id) -> str:
    """Write the run as a Hugging Face Space (a zip of app.py, requirements, model) to download."""
    run = _run(services, run_id)
    return str(export_space(run, fresh_download_folder(services.settings, "export", "space"), as_zip=True).path)


@shows_errors
def on_push_hub(services: Services, run_id, repo_id: str, token: str, private: bool, kind: str = "model") -> str:
    """Push the run to a Hub repo (its model, or a Space demo); the token serves this call only, never stored."""
    from backend.sharing.hub import push_to_hub  # huggingface_hub loads only when someone pushes

    run = _run(services, run_id)
    # backend.sharing.hub checks the name and the token before any network call and explains Hub errors.
    url = push_to_hub(run, repo_id or "", token=token or "", private=bool(private), kind=kind or "model")
    what = "a Space" if kind == "space" else "a model repository"
    return f"Pushed **{run.name}** to {what}: [{url}]({url})."


def _import_failed(message: str):
    return f"<div class='ms-error'>{message}</div>", gr.skip()


@shows_errors(fallback=_import_failed)
def on_import(services: Services, path: str | None, name: str | None, selected):
    """Import a model zip as a succeeded run (Playground and Share can use it); returns a message and the runs."""
    if not path:
        raise UserError("Upload a model zip first: one made by Download, or a zip of a Hugging Face model folder.")
    result = services.import_model(Path(path), name=name)
    notes = "".join(f"\n- {note}" for note in result.notes)
    message = (f"Imported **{result.run.name}** as run #{result.run.id} ({result.run.task}). "
               f"Try it in the Playground or publish a demo link.{notes}")
    return message, on_refresh_runs(services, result.run.id)


def build_share_tab(services: Services):
    """Lay out the Share tab; returns the run picker, its change handler and that handler's outputs (for page load)."""
    private = {"api_visibility": "private"}
    settings = services.settings
    if settings.share:
        gr.Markdown(SHARE_WARNING, elem_classes=["ms-error"])
    runs = _succeeded(services)
    run_picker = gr.Dropdown(run_choices(runs), value=runs[0].id if runs else None, label="Finished run",
                             info="Runs that trained successfully, and imported models.", elem_id="share-run")
    with gr.Accordion("Demo links", open=True):
        gr.Markdown("A demo link opens a page with only this model's try-it box, its name and model card; "
                    "no datasets, no other runs. Revoke a link to turn it off at once.")
        with gr.Row(equal_height=False):
            expiry = gr.Number(0, minimum=0, maximum=MAX_EXPIRY_HOURS, label="Expires after (hours)",
                               info="0 = never", elem_id="share-expiry")
            publish = gr.Button("Publish demo link", variant="primary", elem_id="share-publish")
        published = gr.Markdown(elem_id="share-published")
        link_box = gr.Textbox(label="Newest active link (copy it with the button)", interactive=False,
                              buttons=["copy"], visible=False, elem_id="share-link-copy")
        links = gr.Dataframe(pd.DataFrame(columns=LINK_COLUMNS), label="Links of this run", interactive=False,
                             elem_id="share-links")
        with gr.Row(equal_height=False):
            revoke_picker = gr.Dropdown([], label="Active link", elem_id="share-revoke-link")
            revoke = gr.Button("Revoke link", variant="stop", elem_id="share-revoke")
    with gr.Accordion("Download and export", open=False):
        with gr.Row(equal_height=False):
            download = gr.Button("Download model (zip)", elem_id="share-download")
            space = gr.Button("Export as a Space (zip)", elem_id="share-space")
        export_file = gr.File(label="Download", interactive=False, height=100, elem_id="share-file")
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row(equal_height=False):
            hub_repo = gr.Textbox(label="Repository", placeholder="owner/name", elem_id="share-hub-repo")
            # type="password": the token is never shown again; it lives only in this request.
            hub_token = gr.Textbox(label="Access token", type="password", elem_id="share-hub-token")
            hub_kind = gr.Radio([("Model files", "model"), ("Space (demo app)", "space")], value="model",
                                label="Push as")
            hub_private = gr.Checkbox(True, label="Private repository")
        push = gr.Button("Push", elem_id="share-push")
        pushed = gr.Markdown()
    with gr.Accordion("Import a model", open=False):
        with gr.Row(equal_height=False):
            import_file = gr.File(label="Model zip", type="filepath", file_types=[".zip"], height=100,
                                  elem_id="share-import-file")
            import_name = gr.Textbox(label="Name (optional)")
        import_button = gr.Button("Import", elem_id="share-import")
        imported = gr.Markdown(elem_id="share-imported")

    # Link URLs use the address the browser came in on (a share link, a proxy): Gradio injects
    # gr.Request by annotation, which functools.partial hides, hence these wrappers.
    def pick_run(run_id, request: gr.Request):
        return on_pick_run(services, run_id, request)

    def publish_link(run_id, expiry_hours, request: gr.Request):
        return on_publish(services, run_id, expiry_hours, request)

    def revoke_link(run_id, demo_id, request: gr.Request):
        return on_revoke(services, run_id, demo_id, request)

    def copy_link(run_id, request: gr.Request):
        return on_copy_link(services, run_id, request)

    for event in (run_picker.change(pick_run, run_picker, [published, links, revoke_picker], **private),
                  publish.click(publish_link, [run_picker, expiry], [published, links, revoke_picker], **private),
                  revoke.click(revoke_link, [run_picker, revoke_picker], [published, links, revoke_picker],
                               **private)):
        event.then(copy_link, run_picker, link_box, **private)
    for button, handler in ((download, on_download), (space, on_export_space)):
        download_when_ready(button.click(partial(handler, services), run_picker, export_file, concurrency_limit=2,
                                         **private), export_file)
    push.click(partial(on_push_hub, services), [run_picker, hub_repo, hub_token, hub_private, hub_kind], pushed,
               concurrency_limit=1, **private)
    import_button.click(partial(on_import, services), [import_file, import_name, run_picker], [imported, run_picker],
                        concurrency_limit=1, **private)
    return run_picker, pick_run, [published, links, revoke_picker]
