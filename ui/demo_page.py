"""The public page of one demo link, served at /demo/<token>/: that run's try-it box, its name and model card.

This is a Blocks of its own, mounted beside the main app (see ui/server.py), so its API holds
only what is defined here: `/predict` (text classification), `/generate` (generation),
`/classify_image` (ui/image_panels) and `/predict_row` (tables, ui/table_demo). Neither
takes a run id: the token comes from the URL the request was made to, and every call looks it
up again in the database (backend.sharing.demos.open_demo), so a revoked or expired link stops at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import gradio as gr

from backend.sharing.demos import MAX_DEMO_NEW_TOKENS, DemoUnavailable, model_card
from backend.errors import UserError
from backend.services import Services, task_of_run
from ui.errors import user_message
from ui.generate_panel import StopSwitches
from ui.image_panels import build_demo_image_box
from ui.table_demo import build_demo_table_box, example_row

log = logging.getLogger(__name__)

DEFAULT_NEW_TOKENS = 200
PRIVATE = {"api_visibility": "private"}
UPLOAD_LIFETIME_S = 600


def token_of(request: gr.Request | None) -> str:
    """The demo token of the URL the request came in on (/demo/<token>/...); '' when there is none."""
    if request is None:
        return ""
    params = getattr(request, "path_params", None) or {}
    return str(params.get("token", ""))


def _fail(exc: Exception) -> gr.Error:
    # The API caller sees the same sentence as the page: never a trace, never another run's details.
    if isinstance(exc, gr.Error):
        return gr.Error(exc.message, print_exception=False)
    if not isinstance(exc, UserError):
        log.error("demo call failed", exc_info=exc)
    return gr.Error(user_message(exc), print_exception=False)


def demo_page_url(services: Services, request: gr.Request | None) -> str:
    """This demo's address as the visitor's browser reached it."""
    from ui.share_tab import base_url, demo_url

    return demo_url(base_url(services.settings, request), token_of(request))


def visitor_card(card: str, url: str, panel: str, example_row: str = "{}") -> str:
    """The model card for a visitor: its "How to use" (which names files they do not have) becomes
    the `gradio_client` call of this very page (`example_row`: a table model's row, as JSON)."""
    if not card:
        return ""
    head = card.split("\n## How to use", 1)[0].rstrip()
    if panel == "table":
        call = (f"result = client.predict({example_row!r}, api_name=\"/predict_row\")  "
                "# the row as JSON (absent columns count as missing) -> prediction (and probabilities)")
    elif panel == "generate":
        call = ('text = client.predict("Once upon a time", 200, 0.8, api_name="/generate")  '
                "# prompt, max new tokens, temperature")
    elif panel == "image":
        call = ('result = client.predict(handle_file("photo.jpg"), api_name="/classify_image")  '
                "# the label and its confidences")
    else:
        call = 'result = client.predict("some text", api_name="/predict")  # the label and its confidences'
    result = call.split(" =")[0]
    return (f"{head}\n\n## Use it from Python\n\n`pip install gradio_client`, then:\n\n```python\n"
            f"from gradio_client import Client{', handle_file' if panel == 'image' else ''}\n\n"
            f"client = Client({url!r})\n{call}\nprint({result})\n```\n")


def on_open(services: Services, request: gr.Request | None):
    """Fill the page for the link's run, or say that the link does not open anything.

    Returns updates for: title, the "not available" box, the classify and generate boxes, the
    model card accordion and the card's text.
    """
    try:
        target = services.open_demo(token_of(request))
    except DemoUnavailable as exc:
        hidden = gr.update(visible=False)
        return "## Demo not available", gr.update(value=str(exc), visible=True), hidden, hidden, hidden, ""
    panel = task_of_run(target.run).panel
    generates = panel == "generate"
    what = {"generate": "writes text that continues your prompt",
            "image": "sorts an image into one of its classes",
            "table": "predicts from one row of a table"}.get(panel, "sorts a text into one of its classes")
    title = f"## {target.run.name}\nA model trained with Modelsmith; it {what}."
    row = example_row(services.demo_table_form(token_of(request))) if panel == "table" else "{}"
    card = visitor_card(model_card(target), demo_page_url(services, request), panel, row)
    # An image or table model's box is ui/image_panels.py's or ui/table_demo.py's, shown by its own
    # page-load handler.
    return (title, gr.update(value="", visible=False), gr.update(visible=panel == "classify"),
            gr.update(visible=generates),
            gr.update(visible=bool(card)), card)


def on_predict(services: Services, text: str | None, request: gr.Request | None) -> dict[str, float]:
    """Class probabilities of `text` from the link's classifier (the `/predict` endpoint)."""
    try:
        return services.demo_predict(token_of(request), text)
    except Exception as exc:
        raise _fail(exc) from None


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def on_generate(services: Services, switches: StopSwitches, prompt: str | None, max_new_tokens, temperature,
                request: gr.Request | None) -> Iterator[str]:
    """The prompt's continuation, growing as it is written (the `/generate` endpoint)."""
    session = _session(request)
    stop = switches.start(session)
    text = ""
    try:
        for piece in services.demo_stream(token_of(request), prompt,
                                 max_new_tokens=int(max_new_tokens or DEFAULT_NEW_TOKENS),
                                 temperature=float(temperature or 0.8), should_stop=stop.is_set):
            text += piece
            yield text
    except Exception as exc:
        raise _fail(exc) from None
    finally:
        switches.finish(session, stop)


def build_demo_page(services: Services) -> gr.Blocks:
    """The demo Blocks; mount it at /demo/{token} (ui.server), never inside the main app."""

    # Gradio injects gr.Request by the annotation of the function it is given, so these thin
    # wrappers (not functools.partial) carry it; the on_* functions stay testable without a server.
    def open_page(request: gr.Request):
        return on_open(services, request)

    def predict(text: str, request: gr.Request):
        return on_predict(services, text, request)

    switches = StopSwitches()  # Stop ends this browser session's generation after the current token

    def generate(prompt: str, max_new_tokens: float, temperature: float, request: gr.Request):
        yield from on_generate(services, switches, prompt, max_new_tokens, temperature, request)

    def stop(request: gr.Request) -> None:
        switches.stop(_session(request))

    # delete_cache: an image uploaded but never classified is deleted after UPLOAD_LIFETIME_S (a
    # classified one is deleted at once, ui/image_panels.on_demo_classify).
    with gr.Blocks(title="Modelsmith demo", analytics_enabled=False,
                   delete_cache=(UPLOAD_LIFETIME_S, UPLOAD_LIFETIME_S)) as page:
        title = gr.Markdown("## Loading the demo...", elem_id="demo-title")
        unavailable = gr.Markdown(visible=False, elem_id="demo-unavailable", elem_classes=["ms-error"])
        with gr.Column(visible=False) as classify:
            with gr.Row(equal_height=False):
                with gr.Column():
                    text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste a text to classify",
                                      elem_id="demo-text")
                    predict_button = gr.Button("Predict", variant="primary", elem_id="demo-predict")
                label = gr.Label(num_top_classes=5, label="Prediction", elem_id="demo-prediction")
        with gr.Column(visible=False) as write:
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Start a text; the model continues it",
                                elem_id="demo-prompt")
            with gr.Row():
                length = gr.Slider(1, MAX_DEMO_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                   label="Length (tokens)")
                temperature = gr.Slider(0.1, 2.0, value=0.8, step=0.05, label="Temperature",
                                        info="Lower is safer, higher is more surprising.")
            with gr.Row():
                generate_button = gr.Button("Generate", variant="primary", elem_id="demo-generate")
                stop_button = gr.Button("Stop", elem_id="demo-stop")
            written = gr.Textbox(label="Generated text", lines=8, interactive=False, elem_id="demo-output")
        build_demo_image_box(services, page, token_of)
        build_demo_table_box(services, page, token_of)
        with gr.Accordion("Model card", open=False, visible=False, elem_id="demo-card-box") as card_box:
            card = gr.Markdown(elem_id="demo-card")

        page.load(open_page, None, [title, unavailable, classify, write, card_box, card], **PRIVATE)
        predict_button.click(predict, text, label, api_name="predict", concurrency_limit=4)
        text.submit(predict, text, label, concurrency_limit=4, **PRIVATE)
        generate_button.click(generate, [prompt, length, temperature], written, api_name="generate",
                              concurrency_limit=2)
        # Not cancels=: that cannot interrupt a running function; the sampler checks the switch per token.
        stop_button.click(stop, None, None, queue=False, **PRIVATE)
    return page
