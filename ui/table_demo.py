"""The demo page's table box (issue 15): a form built from the link's table model, and its API endpoint.

The page is one Blocks for every link, so the form cannot be built when the page is: on load, the
link's columns go into a State, and a gr.render draws one input per column (as the Playground's
table form does, ui/tabular_panels). Outsiders call `/predict_row` with the row as JSON text
({"age": 39, "workclass": "State-gov"}); every call looks the token up again, so a revoked link
stops at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import gradio as gr

from backend.errors import UserError
from backend.services import Services, get_task
from ui.errors import user_message
from ui.tabular_panels import answer_outputs, build_row_form, form_input, form_row, keep_render_private

log = logging.getLogger(__name__)

EXAMPLE_COLUMNS = 4  # the visitor card's example row names this many columns


def _fail(exc: Exception) -> gr.Error:
    # The visitor sees a sentence, never a trace or another run's details.
    if isinstance(exc, gr.Error):
        return exc
    if not isinstance(exc, UserError):
        log.error("demo table call failed", exc_info=exc)
    return gr.Error(user_message(exc), print_exception=False)


def example_row(fields: list[dict]) -> str:
    """JSON of a row for the visitor card: a value seen in training for the first few columns."""
    row = {}
    for field in fields[:EXAMPLE_COLUMNS]:
        if field.get("choices"):
            row[field["column"]] = field["choices"][0]
        elif "mean" in field:
            row[field["column"]] = round(float(field["mean"]), 4)
        else:
            row[field["column"]] = "2024-01-31"
    return json.dumps(row)


def on_open_demo_table_box(services: Services, token: str):
    """Show the table box, and hand its form the link's columns, when the link's model reads table rows."""
    try:
        if not get_task(services.open_demo(token).run.task).reads_rows:
            return gr.update(visible=False), []
        return gr.update(visible=True), services.demo_table_form(token)
    except Exception:  # not available: the page's own handler says why
        return gr.update(visible=False), []


def on_demo_table_predict(services: Services, token: str, columns: list[str], kinds: list[str], *values):
    """The form's Predict: the link's model on the filled-in row (blank boxes are missing values)."""
    try:
        return answer_outputs(services.demo_predict_row(token, form_row(columns, kinds, values)))
    except Exception as exc:
        raise _fail(exc) from None


def on_demo_predict_row(services: Services, token: str, row_json: str | None) -> dict:
    """The `/predict_row` endpoint: {"prediction": ..., "probabilities": {...}} (classes) or {"prediction": number}."""
    try:
        return services.demo_predict_row(token, row_json)
    except Exception as exc:
        raise _fail(exc) from None


def build_demo_table_box(services: Services, page: gr.Blocks, token_of: Callable[[gr.Request | None], str]) -> None:
    """The demo page's table box: a form per column -> prediction; its API endpoint is /predict_row."""
    private = {"api_visibility": "private"}

    def open_box(request: gr.Request):
        return on_open_demo_table_box(services, token_of(request))

    def predict_row(row_json: str, request: gr.Request):
        return on_demo_predict_row(services, token_of(request), row_json)

    fields_state = gr.State([])
    with gr.Column(visible=False, elem_id="demo-table-box") as box:
        form_area, prediction, number = build_row_form(elem_prefix="demo-")
        # The API's way in: the row as JSON text (hidden on the page, which uses the form).
        row_json = gr.Textbox(visible=False, label="Row (JSON)", elem_id="demo-row-json")
        answer = gr.JSON(visible=False, label="Answer", elem_id="demo-row-answer")
        api_button = gr.Button(visible=False, elem_id="demo-row-api")

    with form_area:
        @gr.render(inputs=fields_state)
        def render_form(fields):
            if not fields:
                return
            inputs = [form_input(field) for field in fields]
            columns, kinds = [f["column"] for f in fields], [f["kind"] for f in fields]

            def predict(request: gr.Request, *values):
                return on_demo_table_predict(services, token_of(request), columns, kinds, *values)

            button = gr.Button("Predict", variant="primary", elem_id="demo-table-predict")
            button.click(predict, inputs, [prediction, number], concurrency_limit=4, **private)
        keep_render_private()

    page.load(open_box, None, [box, fields_state], **private)
    api_button.click(predict_row, row_json, answer, api_name="predict_row", concurrency_limit=4)
