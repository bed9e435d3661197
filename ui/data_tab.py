"""Data tab: upload, preview, map columns, ingest with a validation report, manage stored datasets."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.data.corpus_overview import corpus_overview
from backend.data.columns import suggest_columns
from backend.data.reading import read_table
from backend.data.store import IngestOptions, ingest_summary, load_split
from backend.data.uploads import discard_upload
from backend.services import Services, default_task, get_task, list_tasks
from ui.errors import shows_errors, unchanged
from ui.formatting import class_counts, corpus_markdown, dataset_choices, datasets_table, error_box, histogram, report_markdown
from ui.image_panels import build_thumbnail_grid, image_report_markdown, image_widths, thumbnails_update, zip_upload_info
from ui.tabular_panels import (build_table_options, on_table_upload, on_target_picked, parse_kinds,
                              table_report_markdown)

PREVIEW_ROWS = 20


def task_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered task, for the upload's task radio."""
    return [(task.upload_label, task.name) for task in list_tasks()]


NO_COLUMN = "(none)"
FILE_TYPES = [".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".zip", ".xlsx"]  # .zip: images; .xlsx: tables
UPLOAD_HINT = ("Upload a CSV, TSV, JSON, JSONL, Parquet, Excel or TXT file to see its first rows here, or a .zip of "
               "image class folders.")


def _no_preview():
    # Hidden rather than empty: an empty table still shows placeholder headers "1 2 3".
    return gr.update(value=pd.DataFrame(), visible=False)


def _upload_failed(message: str):
    return (_no_preview(), gr.update(choices=[], value=None), gr.update(choices=[NO_COLUMN], value=NO_COLUMN),
            error_box(message))


# No toast: the message stays in one place, under the file it is about.
@shows_errors(fallback=_upload_failed, toast=False)
def on_upload(services: Services, path: str | None):
    """Preview the uploaded file and preselect the suggested text and label columns."""
    if not path:
        return (_no_preview(), gr.update(choices=[], value=None), gr.update(choices=[NO_COLUMN], value=NO_COLUMN),
                UPLOAD_HINT)
    if Path(path).suffix.lower() == ".zip":  # images in class folders: read on Ingest, not previewed as a table
        return (_no_preview(), gr.update(choices=[], value=None), gr.update(choices=[NO_COLUMN], value=NO_COLUMN),
                zip_upload_info(path))
    settings = services.settings
    read = read_table(Path(path), max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows,
                      max_columns=settings.max_columns)
    frame = read.frame
    text_column, label_column = suggest_columns(frame)
    columns = [str(c) for c in frame.columns]
    info = [f"**{Path(path).name}** — {len(frame):,} rows, {len(columns)} columns, {read.format or 'table'}, "
            f"encoding {read.encoding}" + (f", delimiter `{read.delimiter!r}`" if read.delimiter else "")]
    info += [f"Warning: {w}" for w in read.warnings]
    info.append("Check the suggested columns, then press **Ingest**.")
    return (gr.update(value=frame.head(PREVIEW_ROWS), visible=True),
            gr.update(choices=columns, value=text_column),
            gr.update(choices=[NO_COLUMN, *columns], value=label_column or NO_COLUMN),
            "\n\n".join(info))


def on_task_change(task: str):
    """Show the label column picker only for a task that needs one (text generation has no label), and
    the text column only for a task that reads a table (an image zip has neither)."""
    if not task:
        return gr.update(visible=True), gr.update(visible=True)
    # A table task's inputs are all the columns but the target: no text column (ui/tabular_panels.py).
    return (gr.update(visible=get_task(task).needs_label_column),
            gr.update(visible=get_task(task).upload_kind == "table" and not get_task(task).reads_rows))


def _ingest_failed(message: str):
    # The report area keeps the message; charts of an earlier dataset would only confuse.
    return (error_box(message), gr.update(visible=False), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(),
            gr.update(visible=False))


def on_images_zip_shown(task: str):
    """The "zip of the images" box: only for a task that reads image zips (a table of paths points into it)."""
    try:
        return gr.update(visible=bool(task) and get_task(task).upload_kind == "image-zip")
    except ValueError:
        return gr.update(visible=False)


@shows_errors(fallback=_ingest_failed)
def on_ingest(services: Services, path: str | None, task: str, text_column: str | None, label_column: str | None,
              validation_path: str | None, name: str, validation_percent: float, drop_columns=None,
              column_kinds: str | None = None, sheet: str | None = None, images_zip: str | None = None):
    """Validate and store the upload; show the report, class chart and length histogram.

    For images, `path` may be a table of image paths and labels and `images_zip` the zip they point into."""
    if not path:
        raise gr.Error("Upload a file first.", print_exception=False)
    if not Path(path).is_file():  # stored and removed by an earlier Ingest of this same upload
        raise gr.Error("This upload was already ingested and removed from the upload cache. "
                       "Upload the file again to ingest it again.", print_exception=False)
    options = IngestOptions(task=task, text_column=text_column or None,
                            label_column=label_column if label_column not in (None, "", NO_COLUMN)
                            and get_task(task).needs_label_column else None,
                            validation_fraction=float(validation_percent) / 100.0, name=(name or "").strip() or None,
                            **({"drop_columns": tuple(drop_columns or ()), "column_kinds": parse_kinds(column_kinds),
                                "sheet": sheet or None} if get_task(task).reads_rows else {}),
                            **({"images_zip": images_zip or None} if get_task(task).upload_kind == "image-zip" else {}))
    outcome = services.ingest(Path(path), options, Path(validation_path) if validation_path else None)
    summary = ingest_summary(outcome)
    record = outcome.dataset
    # The stored Parquet is the dataset now: the raw upload must not linger in Gradio's served cache.
    for uploaded in (path, validation_path, images_zip):
        discard_upload(uploaded, gr.utils.get_upload_folder())
    task = get_task(record.task)
    if task.reads_rows:  # a table: its own report, the class balance, no text lengths
        return (table_report_markdown(summary, record), gr.update(visible=True),
                gr.update(value=class_counts(record.classes), visible=bool(record.classes)),
                gr.update(visible=False), *refresh_datasets(services, select=record.id), thumbnails_update(None))
    if task.stores_corpus:  # one long text per split: report the corpus, histogram its lines
        overview = corpus_overview(record)
        report, lengths = corpus_markdown(summary, overview), overview["line_lengths"]
    elif task.upload_kind == "image-zip":  # images: sizes instead of text lengths, and thumbnails
        report, lengths = image_report_markdown(summary, record.report), image_widths(record.report)
    else:
        report = report_markdown(summary, record.report)
        lengths = load_split(record, "train")["text"].astype(str).str.len().tolist()
    gr.Info("Dataset stored." if not outcome.reused else "The same content was already stored: reusing it.")
    # Text generation has no classes: only the length histogram is worth showing.
    return (report, gr.update(visible=True),
            gr.update(value=class_counts(record.classes), visible=bool(record.classes)),
            length_bars(lengths, task.length_title), *refresh_datasets(services, select=record.id),
            thumbnails_update(record.report if task.upload_kind == "image-zip" else None))


def length_bars(lengths: list[int], title: str):
    """The length histogram with its bars in numeric order (a string axis would sort "100–119" before "20–39")."""
    bars = histogram(lengths)
    return gr.update(value=bars, sort=bars["length"].tolist(), title=title)


def refresh_datasets(services: Services, select: int | None = None):
    """The stored-datasets table and the dataset pickers (this tab and the Train tab).

    `select` picks that dataset in both pickers (the one just ingested).
    """
    records = services.list_datasets()
    choices = dataset_choices(records)
    if select in {r.id for r in records}:
        return datasets_table(records), gr.update(choices=choices, value=select), gr.update(choices=choices,
                                                                                              value=select)
    return datasets_table(records), gr.update(choices=choices, value=None), gr.update(choices=choices)


@shows_errors(fallback=unchanged(3))
def on_rename(services: Services, dataset_id: int | None, new_name: str):
    """Rename the selected dataset."""
    if not dataset_id:
        raise gr.Error("Pick a dataset to rename.", print_exception=False)
    if not (new_name or "").strip():
        raise gr.Error("Type the new name first.", print_exception=False)
    services.rename_dataset(int(dataset_id), new_name)
    gr.Info("Renamed.")
    return refresh_datasets(services, select=int(dataset_id))


@shows_errors(fallback=unchanged(4))
def on_delete(services: Services, dataset_id: int | None, confirmed: bool):
    """Delete the selected dataset (files and row) once confirmed; refused while runs use it."""
    if not dataset_id:
        raise gr.Error("Pick a dataset to delete.", print_exception=False)
    if not confirmed:
        raise gr.Error("Tick “Yes, delete it” to confirm: deleting cannot be undone.", print_exception=False)
    services.delete_dataset(int(dataset_id))
    gr.Info(f"Dataset {dataset_id} deleted.")
    return (*refresh_datasets(services), False)


def on_table_select(evt: gr.SelectData):
    """Clicking a row of the stored-datasets table picks that dataset."""
    row = evt.row_value or []
    return int(row[0]) if row and str(row[0]).isdigit() else gr.skip()


def on_page_load(services: Services, train_dataset_value):
    """A (re)loaded page shows the datasets stored since the app started."""
    records = services.list_datasets()
    choices = dataset_choices(records)
    ids = {r.id for r in records}
    keep = train_dataset_value if train_dataset_value in ids else (records[0].id if records else None)
    return datasets_table(records), gr.update(choices=choices), gr.update(choices=choices, value=keep)


def build_data_tab(services: Services, train_dataset: gr.Dropdown):
    """Lay out the Data tab; returns (datasets table, dataset picker) for the page-load refresh.

    `train_dataset` is the Train tab's dataset picker: it follows new and deleted datasets.
    """
    gr.Markdown("Upload your data, check the suggested columns, then **Ingest** to validate and store it.",
                elem_classes=["ms-intro"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            upload = gr.File(label="Data file", type="filepath", elem_id="data-upload", file_types=FILE_TYPES,
                             height=140)
            images_zip = gr.File(label="Zip of the images (when the data file is a table of image paths and labels)",
                                 type="filepath", file_types=[".zip"], height=100, elem_id="images-zip",
                                 visible=default_task().upload_kind == "image-zip")
            file_info = gr.Markdown(UPLOAD_HINT, elem_id="file-info")
            preview = gr.Dataframe(label="Preview (first rows)", interactive=False, max_height=330, wrap=True,
                                   visible=False, elem_id="data-preview")
        with gr.Column(scale=2):
            task = gr.Radio(task_choices(), value=default_task().name, label="Task")
            text_column = gr.Dropdown([], label="Text column", info="The text the model reads.", elem_id="text-column")
            label_column = gr.Dropdown([NO_COLUMN], value=NO_COLUMN, label="Label column",
                                       info="What the model learns to predict.", elem_id="label-column")
            table_options = build_table_options()
            name = gr.Textbox(label="Dataset name", placeholder="defaults to the file name")
            with gr.Accordion("Validation data", open=False):
                validation_file = gr.File(label="Separate validation file (optional, same columns)",
                                          type="filepath", file_types=FILE_TYPES, height=100)
                validation_percent = gr.Slider(1, 50, value=10, step=1,
                                               label="Without one, hold out this % (stratified, seeded)")
            ingest_button = gr.Button("Ingest", variant="primary", elem_id="ingest")
    report = gr.Markdown(elem_id="ingest-report")
    with gr.Row(visible=False) as charts:
        class_chart = gr.BarPlot(x="class", y="rows", title="Class distribution", height=260, y_lim=[0, None],
                                 sort="-y")
        length_chart = gr.BarPlot(x="length", y="count", title="Text length (characters, training split)",
                                  height=260, x_label_angle=-30, y_lim=[0, None])
    thumbnails = build_thumbnail_grid()

    gr.Markdown("### Stored datasets")
    records = services.list_datasets()
    table = gr.Dataframe(datasets_table(records), interactive=False, max_height=300, elem_id="datasets-table")
    with gr.Row(equal_height=False):
        selected = gr.Dropdown(dataset_choices(records), value=None, label="Dataset (or click a row above)",
                               scale=3, elem_id="dataset-picker")
        new_name = gr.Textbox(label="New name", scale=2)
        rename_button = gr.Button("Rename", scale=0, size="sm", min_width=90, elem_id="rename-dataset")
        confirm = gr.Checkbox(label="Yes, delete it", value=False, scale=1)
        delete_button = gr.Button("Delete", variant="stop", scale=0, size="sm", min_width=90,
                                  elem_id="delete-dataset")

    refresh_outputs = [table, selected, train_dataset]
    table_outputs = [preview, text_column, label_column, file_info, table_options.group, table_options.drop,
                     table_options.sheet]
    upload.change(partial(on_upload, services), upload, [preview, text_column, label_column, file_info],
                  api_visibility="private").then(partial(on_table_upload, services), [upload, task], table_outputs,
                                                 api_visibility="private")
    table_options.sheet.input(partial(on_table_upload, services), [upload, task, table_options.sheet], table_outputs,
                              api_visibility="private")
    label_column.input(on_target_picked, [task, label_column, table_options.drop, preview], table_options.drop,
                       api_visibility="private")
    task.change(on_task_change, task, [label_column, text_column], api_visibility="private")
    task.change(on_images_zip_shown, task, images_zip, api_visibility="private")
    task.input(partial(on_table_upload, services), [upload, task], table_outputs, api_visibility="private")
    ingest_button.click(partial(on_ingest, services),
                        [upload, task, text_column, label_column, validation_file, name, validation_percent,
                         *table_options.ingest_inputs(), images_zip],
                        [report, charts, class_chart, length_chart, *refresh_outputs, thumbnails],
                        api_visibility="private")
    table.select(on_table_select, None, selected, api_visibility="private")
    rename_button.click(partial(on_rename, services), [selected, new_name], refresh_outputs, api_visibility="private")
    delete_button.click(partial(on_delete, services), [selected, confirm], [*refresh_outputs, confirm],
                        api_visibility="private")
    return table, selected
