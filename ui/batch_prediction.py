"""The Playground's "Batch prediction" section, shared by the panels that predict a whole file.

A text classifier and a table model both take a file, write a CSV of predictions to download, and,
when the file holds the answers, show the scores and a confusion matrix. Each panel says what the
file should hold and handles it; the layout, the wiring and the failure outputs are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ui.downloads import download_when_ready
from ui.formatting import error_box


@dataclass(frozen=True)
class BatchPrediction:
    """The section's components; a handler returns (CSV path, summary, preview, confusion HTML)."""

    file: gr.File
    button: gr.Button
    download: gr.File
    summary: gr.Markdown
    preview: gr.Dataframe
    confusion: gr.HTML

    @property
    def outputs(self) -> list:
        """What a batch handler fills, in the order it returns them."""
        return [self.download, self.summary, self.preview, self.confusion]


def build_batch_prediction(intro: str, file_types: Sequence[str], elem_prefix: str = "") -> BatchPrediction:
    """Lay out the closed "Batch prediction" accordion; `elem_prefix` keeps each panel's element ids apart."""
    with gr.Accordion("Batch prediction", open=False):
        gr.Markdown(intro)
        with gr.Row(equal_height=False):
            with gr.Column():
                file = gr.File(label="File to predict", type="filepath", file_types=list(file_types), height=140,
                               elem_id=f"{elem_prefix}batch-file")
                # Off until the page has loaded, like every Playground control that sends the run
                # picked (see ui/playground_tab.py: build_playground_tab).
                button = gr.Button("Predict file", elem_id=f"{elem_prefix}predict-file", interactive=False)
            with gr.Column():
                download = gr.File(label="Predictions (CSV)", interactive=False, height=140,
                                   elem_id=f"{elem_prefix}batch-download")
                summary = gr.Markdown(elem_id=f"{elem_prefix}batch-summary")
        preview = gr.Dataframe(label="First predictions", interactive=False, max_height=300)
        confusion = gr.HTML()
    return BatchPrediction(file, button, download, summary, preview, confusion)


def on_batch_click(batch: BatchPrediction, handler: Callable, run_picker: gr.Dropdown) -> None:
    """Predict the uploaded file with the picked run on a click (one file at a time), then download the CSV."""
    event = batch.button.click(handler, [run_picker, batch.file], batch.outputs, concurrency_limit=1,
                               api_visibility="private")
    download_when_ready(event, batch.download)


def batch_failed(message: str):
    """The section's outputs when a batch failed: no file, the message, an empty preview."""
    return None, error_box(message), pd.DataFrame(), ""
