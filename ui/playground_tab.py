"""Playground tab: try a finished model on your own text, or predict a whole file."""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.batch import predict_file
from backend.data import load_split
from backend.inference import load_predictor
from backend.services import Services
from backend.settings import Settings
from ui.errors import shows_errors
from ui.formatting import confusion_html, error_box, run_choices

EXAMPLES = 6
MAX_TEXT_CHARS = 100_000
KEEP_PREDICTIONS_S = 24 * 3600  # prediction files are downloads, not records: clear them after a day
BATCH_TYPES = [".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"]


def _succeeded(services: Services, task: str = "text-classification"):
    return [r for r in services.repo.list_runs("succeeded") if r.task == task]


def _run_folder(services: Services, run_id) -> Path:
    if not run_id:
        raise gr.Error("Pick a finished run first (the Runs tab shows which ones succeeded).", print_exception=False)
    run = services.repo.get_run(int(run_id))
    if run.status != "succeeded" or not run.output_dir:
        raise gr.Error(f"Run #{run.id} is {run.status}; only succeeded runs can predict.", print_exception=False)
    return Path(run.output_dir)


def predictions_dir(settings: Settings) -> Path:
    """Where batch predictions are written for download: a temp folder in the home dir (never next to the DB)."""
    return settings.home / "tmp"


def on_refresh_runs(services: Services, selected):
    """The succeeded runs to choose from, keeping the choice when it is still there."""
    runs = _succeeded(services)
    ids = {r.id for r in runs}
    return gr.update(choices=run_choices(runs), value=selected if selected in ids else (runs[0].id if runs else None))


def on_pick_run(services: Services, run_id):
    """A few validation texts of the run's dataset, a balanced mix of classes, to click and try."""
    if not run_id:
        return gr.update(samples=[])
    try:
        run = services.repo.get_run(int(run_id))
        frame = load_split(services.repo.get_dataset(run.dataset_id), "validation")
    except Exception:  # deleted datasets or runs have no examples: that is fine
        return gr.update(samples=[])
    if frame.empty:
        return gr.update(samples=[])
    per_class = max(1, EXAMPLES // max(frame["label"].nunique(), 1)) if "label" in frame else EXAMPLES
    picks = frame.groupby("label", sort=True).head(per_class) if "label" in frame else frame
    return gr.update(samples=[[str(t)[:500]] for t in picks["text"].head(EXAMPLES)])


@shows_errors
def on_predict(services: Services, run_id, text: str) -> dict[str, float]:
    """Class probabilities for one text (the `predict` API endpoint)."""
    text = text or ""
    if not text.strip():
        raise gr.Error("Type or paste a text first.", print_exception=False)
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}. "
                       "Shorten it (the model only reads the first max-length tokens anyway).", print_exception=False)
    predictor = load_predictor(_run_folder(services, run_id))
    return predictor.predict([text])[0]["scores"]


def _clear_old(folder: Path) -> None:
    cutoff = time.time() - KEEP_PREDICTIONS_S
    for old in folder.glob("predictions-*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed meanwhile by another request
            pass


def _batch_failed(message: str):
    return None, error_box(message), pd.DataFrame(), ""


@shows_errors(fallback=_batch_failed)
def on_batch(services: Services, run_id, path: str | None):
    """Predict every row of an uploaded file; returns a CSV to download and, with labels, the scores."""
    if not path:
        raise gr.Error("Upload a CSV, TSV or TXT file with one text per row.", print_exception=False)
    folder = _run_folder(services, run_id)
    base = predictions_dir(services.settings)
    base.mkdir(parents=True, exist_ok=True)
    _clear_old(base)
    out_dir = Path(tempfile.mkdtemp(prefix="predictions-", dir=base))
    result = predict_file(Path(path), folder, out_dir, settings=services.settings)
    summary = f"Predicted **{result.rows:,}** rows from the `{result.text_column}` column."
    confusion = ""
    if result.metrics:
        summary += (f" Against the `{result.label_column}` column: accuracy **{result.metrics['accuracy']:.3f}**, "
                    f"macro F1 **{result.metrics['macro_f1']:.3f}**.")
        confusion = confusion_html(result.metrics)
    return str(result.csv_path), summary, result.preview, confusion


def build_playground_tab(services: Services) -> tuple[gr.Dropdown, gr.Dataset]:
    """Lay out the Playground tab; returns the run picker and the examples, which the app refreshes."""
    runs = _succeeded(services)
    run_picker = gr.Dropdown(run_choices(runs), value=runs[0].id if runs else None, label="Finished run",
                             info="Runs that trained successfully.", elem_id="playground-run")
    with gr.Row(equal_height=False):
        with gr.Column():
            text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste a text to classify",
                              elem_id="playground-text")
            predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
            examples = gr.Dataset(components=[text], samples=[], label="Examples from the validation set (click one)")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction", elem_id="prediction")
    with gr.Accordion("Batch prediction", open=False):
        gr.Markdown("Upload a CSV, TSV or TXT file (one text per row). If it has a label column with the "
                    "model's classes, you also get accuracy, macro F1 and a confusion matrix.")
        with gr.Row(equal_height=False):
            with gr.Column():
                batch_file = gr.File(label="File to predict", type="filepath", file_types=BATCH_TYPES, height=140,
                                     elem_id="batch-file")
                batch_button = gr.Button("Predict file", elem_id="predict-file")
            with gr.Column():
                download = gr.File(label="Predictions (CSV)", interactive=False, height=140, elem_id="batch-download")
                batch_summary = gr.Markdown(elem_id="batch-summary")
        batch_preview = gr.Dataframe(label="First predictions", interactive=False, max_height=300)
        batch_confusion = gr.HTML()

    private = {"api_visibility": "private"}
    run_picker.change(partial(on_pick_run, services), run_picker, examples, **private)
    examples.click(lambda sample: sample[0] if sample else "", examples, text, **private)
    predict_button.click(partial(on_predict, services), [run_picker, text], label, api_name="predict",
                         concurrency_limit=4)
    text.submit(partial(on_predict, services), [run_picker, text], label, concurrency_limit=4, **private)
    batch_button.click(partial(on_batch, services), [run_picker, batch_file],
                       [download, batch_summary, batch_preview, batch_confusion], concurrency_limit=1, **private)
    return run_picker, examples
