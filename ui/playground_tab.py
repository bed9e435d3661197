"""Playground tab: try a finished model on your own text, or predict a whole file."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.batch import predict_file
from backend.data import load_split
from backend.inference import load_predictor
from backend.services import Services
from ui.errors import shows_errors
from ui.formatting import confusion_frame, run_choices

EXAMPLES = 6
MAX_TEXT_CHARS = 100_000


def _succeeded(services: Services, task: str = "text-classification"):
    return [r for r in services.repo.list_runs("succeeded") if r.task == task]


def _run_folder(services: Services, run_id) -> Path:
    if not run_id:
        raise gr.Error("Pick a finished run first (the Runs tab shows which ones succeeded).", print_exception=False)
    run = services.repo.get_run(int(run_id))
    if run.status != "succeeded" or not run.output_dir:
        raise gr.Error(f"Run #{run.id} is {run.status}; only succeeded runs can predict.", print_exception=False)
    return Path(run.output_dir)


def on_refresh_runs(services: Services, selected):
    runs = _succeeded(services)
    ids = {r.id for r in runs}
    return gr.update(choices=run_choices(runs), value=selected if selected in ids else (runs[0].id if runs else None))


def on_pick_run(services: Services, run_id):
    """A few validation texts of the run's dataset, to click and try."""
    if not run_id:
        return gr.update(samples=[])
    run = services.repo.get_run(int(run_id))
    try:
        frame = load_split(services.repo.get_dataset(run.dataset_id), "validation")
    except Exception:  # imported models or deleted datasets have no examples: that is fine
        return gr.update(samples=[])
    picks = frame.groupby("label", sort=True).head(max(1, EXAMPLES // max(frame["label"].nunique(), 1)))
    return gr.update(samples=[[str(t)[:500]] for t in picks["text"].head(EXAMPLES)])


@shows_errors
def on_predict(services: Services, run_id, text: str) -> dict[str, float]:
    """Class probabilities for one text."""
    text = text or ""
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}. "
                       "Shorten it (the model only reads the first max-length tokens anyway).", print_exception=False)
    predictor = load_predictor(_run_folder(services, run_id))
    return predictor.predict([text])[0]["scores"]


@shows_errors
def on_batch(services: Services, run_id, path: str | None):
    """Predict every row of an uploaded file; returns a CSV to download and, with labels, the scores."""
    if not path:
        raise gr.Error("Upload a CSV, TSV or TXT file with one text per row.", print_exception=False)
    folder = _run_folder(services, run_id)
    # The system temp dir, not the home dir: Gradio serves this download, and the home dir (DB,
    # datasets, models) must never be reachable through its file routes.
    out_dir = Path(tempfile.mkdtemp(prefix="modelsmith-predictions-"))
    result = predict_file(Path(path), folder, out_dir, settings=services.settings)
    summary = f"Predicted **{result.rows:,}** rows from `{result.text_column}`."
    confusion = pd.DataFrame()
    if result.metrics:
        summary += (f" Against the `{result.label_column}` column: accuracy **{result.metrics['accuracy']:.3f}**, "
                    f"macro F1 **{result.metrics['macro_f1']:.3f}**.")
        confusion = confusion_frame(result.metrics)
    return str(result.csv_path), summary, result.preview, confusion


def build_playground_tab(services: Services) -> gr.Dropdown:
    """Lay out the Playground tab; returns the run picker so the app can refresh it."""
    runs = _succeeded(services)
    run_picker = gr.Dropdown(run_choices(runs), value=runs[0].id if runs else None, label="Finished run",
                             elem_id="playground-run")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste a text to classify", elem_id="playground-text")
            predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
            examples = gr.Dataset(components=[text], samples=[], label="Examples from the validation set (click)")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction", elem_id="prediction")
    with gr.Accordion("Batch prediction", open=False):
        gr.Markdown("Upload a CSV, TSV or TXT file (one text per row). If it has a label column with the "
                    "model's classes, you also get accuracy, macro F1 and a confusion matrix.")
        batch_file = gr.File(label="File to predict", type="filepath", file_types=[".csv", ".tsv", ".txt", ".jsonl",
                                                                                    ".json", ".parquet"])
        batch_button = gr.Button("Predict file")
        batch_summary = gr.Markdown()
        download = gr.File(label="Predictions (CSV)", interactive=False)
        with gr.Row():
            batch_preview = gr.Dataframe(label="First predictions", interactive=False, max_height=300)
            batch_confusion = gr.Dataframe(label="Confusion matrix", interactive=False)

    run_picker.change(partial(on_pick_run, services), run_picker, examples, api_visibility="private")
    examples.click(lambda sample: sample[0] if sample else "", examples, text, api_visibility="private")
    predict_button.click(partial(on_predict, services), [run_picker, text], label, api_name="predict")
    text.submit(partial(on_predict, services), [run_picker, text], label, api_visibility="private")
    batch_button.click(partial(on_batch, services), [run_picker, batch_file],
                       [download, batch_summary, batch_preview, batch_confusion], api_visibility="private")
    return run_picker
