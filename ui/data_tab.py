"""Data tab: upload, preview, map columns, ingest with a validation report, manage stored datasets."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.data import IngestOptions, ingest, ingest_summary, load_split, read_table, suggest_columns
from backend.services import Services
from ui.errors import shows_errors
from ui.formatting import dataset_choices, datasets_table, histogram, report_markdown

PREVIEW_ROWS = 20
TASKS = [("Text classification (text → label)", "text-classification"),
         ("Text generation (learn to write like the text)", "text-generation")]
NO_COLUMN = "(none)"


@shows_errors
def on_upload(services: Services, path: str | None):
    """Preview the uploaded file and preselect the suggested text and label columns."""
    if not path:
        return (pd.DataFrame(), gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                "Upload a CSV, TSV, JSON, JSONL, Parquet or TXT file.")
    settings = services.settings
    read = read_table(Path(path), max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows)
    frame = read.frame
    text_column, label_column = suggest_columns(frame)
    columns = [str(c) for c in frame.columns]
    info = [f"**{Path(path).name}** — {len(frame):,} rows, {len(columns)} columns, {read.format or 'table'}, "
            f"encoding {read.encoding}" + (f", delimiter `{read.delimiter!r}`" if read.delimiter else "")]
    info += [f"Warning: {w}" for w in read.warnings]
    info.append("Check the suggested columns below, then press **Ingest**.")
    return (frame.head(PREVIEW_ROWS),
            gr.update(choices=columns, value=text_column),
            gr.update(choices=[NO_COLUMN, *columns], value=label_column or NO_COLUMN),
            "\n\n".join(info))


@shows_errors
def on_ingest(services: Services, path: str | None, task: str, text_column: str | None, label_column: str | None,
              validation_path: str | None, name: str, validation_percent: float):
    """Validate and store the upload; show the report, class chart and length histogram."""
    if not path:
        raise gr.Error("Upload a file first.", print_exception=False)
    options = IngestOptions(task=task, text_column=text_column or None,
                            label_column=None if label_column in (None, "", NO_COLUMN) else label_column,
                            validation_fraction=float(validation_percent) / 100.0, name=(name or "").strip() or None)
    outcome = ingest(Path(path), options, validation_path=Path(validation_path) if validation_path else None,
                     settings=services.settings, repo=services.repo)
    summary = ingest_summary(outcome)
    record = outcome.dataset
    classes = pd.DataFrame({"class": list(record.classes), "rows": list(record.classes.values())})
    lengths: list[int] = []
    if task == "text-classification":
        lengths = load_split(record, "train")["text"].astype(str).str.len().tolist()
    message = "Dataset stored." if not outcome.reused else "The same content was already stored: reusing it."
    gr.Info(message)
    return (report_markdown(summary, record.report), classes, histogram(lengths),
            *refresh_datasets(services, select=record.id))


def refresh_datasets(services: Services, select: int | None = None):
    """The stored-datasets table and the dropdown choices (this tab and the Train tab).

    `select` makes the Train tab pick that dataset (the one just ingested).
    """
    records = services.repo.list_datasets()
    choices = dataset_choices(records)
    ids = {r.id for r in records}
    train_update = gr.update(choices=choices, value=select) if select in ids else gr.update(choices=choices)
    return datasets_table(records), gr.update(choices=choices), train_update


@shows_errors
def on_rename(services: Services, dataset_id: int | None, new_name: str):
    """Rename the selected dataset."""
    if not dataset_id:
        raise gr.Error("Pick a dataset to rename.", print_exception=False)
    if not (new_name or "").strip():
        raise gr.Error("Type the new name first.", print_exception=False)
    services.repo.rename_dataset(int(dataset_id), new_name)
    gr.Info("Renamed.")
    return refresh_datasets(services)


@shows_errors
def on_delete(services: Services, dataset_id: int | None, confirmed: bool):
    """Delete the selected dataset (files and row) once confirmed; refused while runs use it."""
    if not dataset_id:
        raise gr.Error("Pick a dataset to delete.", print_exception=False)
    if not confirmed:
        raise gr.Error("Tick “Yes, delete it” to confirm: deleting cannot be undone.", print_exception=False)
    from backend.data import delete_dataset

    delete_dataset(services.repo, int(dataset_id))
    gr.Info(f"Dataset {dataset_id} deleted.")
    return (*refresh_datasets(services), False)


def on_page_load(services: Services, train_dataset_value):
    """A (re)loaded page shows the datasets stored since the app started."""
    table, selected, train = refresh_datasets(services)
    ids = {r.id for r in services.repo.list_datasets()}
    if train_dataset_value not in ids:
        train = gr.update(choices=train["choices"], value=max(ids) if ids else None)
    return table, selected, train


def build_data_tab(services: Services, train_dataset_dropdown_holder: list):
    """Lay out the Data tab; returns (datasets table, dataset picker) for the page-load refresh.

    `train_dataset_dropdown_holder` holds the Train tab's dataset picker, refreshed on ingest.
    """
    gr.Markdown("Upload your data, check the suggested columns, then **Ingest** to validate and store it.")
    with gr.Row():
        with gr.Column(scale=2):
            upload = gr.File(label="Data file (CSV, TSV, JSON, JSONL, Parquet, TXT)", type="filepath", elem_id="data-upload",
                             file_types=[".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt"])
            file_info = gr.Markdown("Upload a CSV, TSV, JSON, JSONL, Parquet or TXT file.", elem_id="file-info")
        with gr.Column(scale=1):
            task = gr.Radio(TASKS, value="text-classification", label="Task")
            text_column = gr.Dropdown([], label="Text column", info="The text the model reads.", elem_id="text-column")
            label_column = gr.Dropdown([], label="Label column", info="What the model predicts (classification).",
                                       elem_id="label-column")
            name = gr.Textbox(label="Dataset name", placeholder="defaults to the file name")
    with gr.Accordion("Validation data", open=False):
        validation_file = gr.File(label="Separate validation file (optional, same columns)", type="filepath")
        validation_percent = gr.Slider(1, 50, value=10, step=1, label="Else hold out this % (stratified, seeded)")
    preview = gr.Dataframe(label="Preview (first rows)", interactive=False, max_height=300)
    ingest_button = gr.Button("Ingest", variant="primary", elem_id="ingest")
    report = gr.Markdown(elem_id="ingest-report")
    with gr.Row():
        class_chart = gr.BarPlot(x="class", y="rows", title="Class distribution", height=260)
        length_chart = gr.BarPlot(x="length", y="count", title="Text length (characters)", height=260,
                                  x_label_angle=-30, sort=None)
    gr.Markdown("### Stored datasets")
    records = services.repo.list_datasets()
    table = gr.Dataframe(datasets_table(records), interactive=False, max_height=300)
    with gr.Row():
        selected = gr.Dropdown(dataset_choices(records), label="Dataset", scale=2)
        new_name = gr.Textbox(label="New name", scale=2)
        rename_button = gr.Button("Rename", scale=1)
    with gr.Row():
        confirm = gr.Checkbox(label="Yes, delete it", value=False)
        delete_button = gr.Button("Delete dataset", variant="stop")

    train_dataset = train_dataset_dropdown_holder[0] if train_dataset_dropdown_holder else None
    refresh_outputs = [table, selected] + ([train_dataset] if train_dataset is not None else [gr.State()])
    upload.change(partial(on_upload, services), upload, [preview, text_column, label_column, file_info],
                  api_visibility="private")
    ingest_button.click(partial(on_ingest, services),
                        [upload, task, text_column, label_column, validation_file, name, validation_percent],
                        [report, class_chart, length_chart, *refresh_outputs], api_visibility="private")
    rename_button.click(partial(on_rename, services), [selected, new_name], refresh_outputs, api_visibility="private")
    delete_button.click(partial(on_delete, services), [selected, confirm], [*refresh_outputs, confirm],
                        api_visibility="private")
    return table, selected
