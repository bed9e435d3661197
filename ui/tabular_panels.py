"""The gradio parts of the table tasks (issue 15): Data tab options and report, and the Playground's table panel.

Data tab: for a task that reads rows, the upload is previewed with its types, the target column
is suggested (the Label column picker, relabelled) and the suggested columns to drop are ticked.
Playground: a form with one input per column of the model (a number box with the range seen in
training, a dropdown of the values seen, a checked date box for a date), the prediction with its
probabilities, and batch prediction of a CSV/xlsx file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.errors import UserError
from backend.services import DatasetRecord, Services, get_task
from ui.batch_prediction import batch_failed, build_batch_prediction, on_batch_click
from ui.errors import shows_errors
from ui.formatting import confusion_html, error_box, readable_number

PREVIEW_ROWS = 20
NO_COLUMN = "(none)"   # the Data tab's "no label column" choice (ui.data_tab.NO_COLUMN)
TABLE_FILE_TYPES = [".csv", ".tsv", ".xlsx", ".parquet", ".json", ".jsonl"]
MOST_CLASSES_SHOWN = 10


def _reads_rows(task: str | None) -> bool:
    try:
        return bool(task) and get_task(task).reads_rows
    except ValueError:
        return False


# --- Data tab --------------------------------------------------------------------------------

@dataclass
class TableOptions:
    """The Data tab's extra inputs for a table: the sheet, columns to leave out, kinds to change."""

    group: gr.Column
    sheet: gr.Dropdown
    drop: gr.CheckboxGroup
    kinds: gr.Textbox

    def ingest_inputs(self) -> list:
        """What on_ingest reads, in its argument order (drop_columns, column_kinds, sheet)."""
        return [self.drop, self.kinds, self.sheet]


def build_table_options(visible: bool = False) -> TableOptions:
    """The sheet picker, drop-columns picker and kind overrides (shown for table tasks only)."""
    with gr.Column(visible=visible) as group:
        sheet = gr.Dropdown([], label="Sheet", visible=False, elem_id="table-sheet",
                            info="The workbook has several sheets: the one to read.")
        drop = gr.CheckboxGroup([], label="Columns to leave out",
                                info="Ticked: identifiers, constant columns and free text (suggested). "
                                     "Every other column except the target is an input.", elem_id="drop-columns")
        kinds = gr.Textbox(label="Kinds to change (optional)", placeholder="zip_code=categorical, year=numeric",
                           info="column=kind, comma-separated; kinds: numeric, categorical, boolean, datetime.",
                           elem_id="table-kinds")
    return TableOptions(group=group, sheet=sheet, drop=drop, kinds=kinds)


def parse_kinds(text: str | None) -> tuple[tuple[str, str], ...]:
    """"a=categorical, b=numeric" -> (("a", "categorical"), ("b", "numeric")); UserError for a part without '='."""
    pairs = []
    for part in filter(None, (piece.strip() for piece in (text or "").split(","))):
        if "=" not in part:
            raise UserError(f"Kinds to change: write column=kind (e.g. zip_code=categorical), not {part!r}.")
        column, kind = part.rsplit("=", 1)
        pairs.append((column.strip(), kind.strip().lower()))
    return tuple(pairs)


def _describe_upload(path: Path, frame: pd.DataFrame, schema) -> str:
    kinds = ", ".join(f"`{c.name}` {c.kind}" for c in schema.columns[:30])
    more = f" and {len(schema.columns) - 30} more" if len(schema.columns) > 30 else ""
    lines = [f"**{path.name}** — {len(frame):,} rows, {len(frame.columns)} columns.",
             f"Column kinds: {kinds}{more}.",
             f"Suggested target: **{schema.suggested_target}** ({schema.suggested_task}).",
             *[f"Note: {note}" for note in schema.notes[:10]],
             "Check the target and the columns to leave out, then press **Ingest**."]
    return "\n\n".join(lines)


@shows_errors(fallback=lambda message: (gr.skip(), gr.skip(), gr.skip(), error_box(message), gr.skip(), gr.skip(),
                                        gr.skip()), toast=False)
def on_table_upload(services: Services, path: str | None, task: str | None, sheet: str | None = None):
    """For a table task: typed preview, suggested target, suggested drops. For other tasks: the text pickers back.

    Returns (preview, text column, label column, file info, table options group, drop picker, sheet picker).
    """
    if not _reads_rows(task):
        return (gr.skip(), gr.update(visible=True),
                gr.update(label="Label column", info="What the model learns to predict."), gr.skip(),
                gr.update(visible=False), gr.update(value=[]), gr.update(value=None))
    label = gr.update(label="Target column", info="The column the model learns to predict (suggested).")
    if not path:
        return (gr.skip(), gr.update(visible=False), label, gr.skip(), gr.update(visible=True), gr.update(),
                gr.update(choices=[], value=None, visible=False))
    from backend.tasks.tabular.columns import infer_schema
    from backend.tasks.tabular.reading import list_sheets, read_table

    sheets = list_sheets(path) if Path(path).suffix.lower() == ".xlsx" else []
    sheet = sheet if sheet in sheets else (sheets[0] if sheets else None)
    frame = read_table(Path(path), sheet=sheet)
    schema = infer_schema(frame)
    columns = [str(c) for c in frame.columns]
    return (gr.update(value=frame.head(PREVIEW_ROWS), visible=True), gr.update(visible=False),
            gr.update(choices=[NO_COLUMN, *columns], value=schema.suggested_target, label="Target column",
                      info="The column the model learns to predict (suggested)."),
            _describe_upload(Path(path), frame, schema), gr.update(visible=True),
            gr.update(choices=[c for c in columns if c != schema.suggested_target],
                      value=[c.name for c in schema.columns if c.suggest_drop and c.name != schema.suggested_target]),
            gr.update(choices=sheets, value=sheet, visible=len(sheets) > 1))


def on_target_picked(task: str | None, target: str | None, dropped, preview):
    """The columns to leave out follow the target picked: every column but the target (one column
    cannot be both), the ticks kept. `preview` is the upload's preview table (its columns are the file's)."""
    if not _reads_rows(task) or preview is None or not len(getattr(preview, "columns", ())):
        return gr.skip()
    columns = [str(c) for c in preview.columns]
    return gr.update(choices=[c for c in columns if c != target], value=[c for c in dropped or () if c != target])


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%" if share else "0%"


def table_report_markdown(summary: dict, record: DatasetRecord) -> str:
    """The validation report of a stored table: sizes, column kinds and missing shares, leakage, target."""
    report = record.report
    lines = [f"### Dataset #{record.id} — {record.name}" + (" (already stored: reused)" if summary.get("reused")
                                                              else ""),
             f"- **Rows:** {record.rows:,} (training {record.train_rows:,}, validation {record.validation_rows:,})",
             f"- **Target:** `{record.target_column}` ({report.get('table_task', '')})",
             f"- **Inputs ({len(record.input_columns)}):** " + ", ".join(f"`{c}`" for c in record.input_columns)]
    if report.get("dropped_columns"):
        lines.append("- **Left out:** " + ", ".join(f"`{c}`" for c in report["dropped_columns"]))
    for key, title in (("duplicate_rows", "Rows repeating an earlier row"),
                       ("conflicting_duplicate_rows", "Rows with the same inputs but another target"),
                       ("missing_target_rows", "Rows without a target (left out)"),
                       ("train_validation_overlap", "Validation rows also in training")):
        if report.get(key):
            lines.append(f"- **{title}:** {report[key]:,}")
    if record.classes:
        shown = list(record.classes.items())[:MOST_CLASSES_SHOWN]
        total = sum(record.classes.values()) or 1
        lines.append("- **Class balance:** " + ", ".join(f"{k} {v:,} ({v / total:.0%})" for k, v in shown))
    summary_values = report.get("target_summary") or {}
    if summary_values:
        lines.append("- **Target distribution:** " + ", ".join(
            f"{name} {summary_values[key]:.4g}" for key, name in (("min", "min"), ("q25", "25%"), ("q50", "median"),
                                                                  ("q75", "75%"), ("max", "max"), ("mean", "mean"))
            if key in summary_values))
    leaks = report.get("leaks") or []
    if leaks:
        lines.append("- **Possible target leakage:** " + "; ".join(f"`{leak['column']}` {leak['reason']}"
                                                                    for leak in leaks))
    lines += ["", "| column | kind | role | missing | distinct |", "|---|---|---|---|---|"]
    roles = {c["name"]: c.get("role", "") for c in record.columns}
    kinds = {c["name"]: c.get("kind") for c in record.columns}   # as used: a changed kind shows as chosen
    for column in report.get("columns", []):
        kind = kinds.get(column["name"]) or column["kind"]
        lines.append(f"| {column['name']} | {kind} | {roles.get(column['name'], '')} | "
                     f"{_percent(column['missing_share'])} | {column['distinct']:,} |")
    warnings = summary.get("warnings") or []
    if warnings:
        lines.append("\n**Warnings**")
        lines.extend(f"- Warning: {w}" for w in warnings)
    return "\n".join(lines)


# --- Playground ------------------------------------------------------------------------------

@dataclass
class TablePanel:
    """The Playground's panel for table models; `batch_button` starts off until the page has loaded (the
    form's Predict is drawn only once a table run is picked)."""

    panel: gr.Column
    prediction: gr.Label
    number: gr.Markdown
    batch_button: gr.Button


def on_show_table_panel(services: Services, run_id):
    """Show the table panel for a table model's run only; an earlier run's results go."""
    try:
        shows = bool(run_id) and get_task(services.get_run(int(run_id)).task).reads_rows
    except Exception:  # deleted meanwhile, or typed in: the other panels say so when used
        shows = False
    return gr.update(visible=shows), None, ""


DATE_HINT = "2024-01-31 or 2024-01-31 14:00"


def form_value(raw, kind: str, column: str = "the date"):
    """A form value as the model reads it: blank boxes are missing values; a number or a date must read as one.

    A number or a date the model cannot read would silently count as missing, so the form refuses it instead."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, str) and not raw.strip():
        return None
    if kind == "numeric":
        return form_number(raw, column)
    if kind == "datetime":
        from backend.tasks.tabular.columns import parse_datetimes

        if isinstance(raw, (int, float)):  # a picker's timestamp (seconds)
            raw = pd.Timestamp(raw, unit="s").isoformat(sep=" ")
        if parse_datetimes(pd.Series([str(raw)])).isna().iloc[0]:
            raise UserError(f"{str(raw)[:40]!r} in `{column}` is not a date: write it like {DATE_HINT}, "
                            "or leave the box blank for an unknown date.")
        return str(raw).strip()
    return raw


def form_number(raw, column: str) -> float:
    """A number box's value: a number typed (spaces ignored), or UserError that says how to write one."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw).strip().replace(" ", "")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{str(raw).strip()[:40]!r} in `{column}` is not a number: write it like 42 or 3.5 "
                        "(a point for decimals), or leave the box blank for an unknown value.")
    return value


@shows_errors
def on_table_predict(services: Services, run_id, columns: list[str], kinds: list[str], *values):
    """One prediction from the form: class probabilities (a Label) or the predicted number (Markdown)."""
    if not run_id:
        raise gr.Error("Pick a finished run first.", print_exception=False)
    return answer_outputs(services.predict_rows(int(run_id), [form_row(columns, kinds, values)])[0])


def form_row(columns: list[str], kinds: list[str], values) -> dict:
    """The filled-in form as one row {column: value} (blank boxes are missing values)."""
    return {column: form_value(value, kind, column) for column, kind, value in zip(columns, kinds, values)}


def answer_outputs(answer: dict):
    """(Label value, Markdown) of a table model's answer: probabilities, or the predicted number."""
    if "probabilities" in answer:
        return answer["probabilities"], ""
    return None, f"### Predicted value: **{answer['prediction']:.6g}**"


def build_row_form(elem_prefix: str) -> tuple[gr.Column, gr.Label, gr.Markdown]:
    """The form-and-answer layout of a table model (Playground and demo page): the column the form is
    rendered into, the class probabilities and the predicted number."""
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("Fill in what you know (blank boxes count as missing), then **Predict**.")
            form_area = gr.Column()
        with gr.Column():
            prediction = gr.Label(num_top_classes=5, label="Prediction", elem_id=f"{elem_prefix}table-prediction")
            number = gr.Markdown(elem_id=f"{elem_prefix}table-number")
    return form_area, prediction, number


def form_input(field: dict):
    """The form's input for one column: a dropdown of the values seen, a number box, or a date box."""
    column, kind = field["column"], field["kind"]
    if "choices" in field:
        return gr.Dropdown(field["choices"], value=None, label=column, allow_custom_value=True,
                           info=f"{kind}; blank = missing, a value not listed counts as unknown")
    if "minimum" in field:
        # A text box, not gr.Number: that one shows and sends 0 for an empty value (gradio-app/gradio#6728),
        # so "blank = missing" would silently be 0. form_value reads the number and says when it is none.
        return gr.Textbox(label=column, placeholder="a number",
                          info=f"seen in training: {readable_number(field['minimum'])} to "
                               f"{readable_number(field['maximum'])}; blank = missing")
    # A text box, not gr.DateTime: that one greys out a date it cannot read and sends the last good
    # value (or none) instead, so a typo would silently count as missing; form_value says what is wrong.
    return gr.Textbox(label=column, placeholder=DATE_HINT, info=f"date, e.g. {DATE_HINT}; blank = missing",
                      elem_classes=["ms-date"])


@shows_errors(fallback=batch_failed)
def on_table_batch(services: Services, download_folder, run_id, path: str | None):
    """Predict every row of an uploaded table; a CSV to download and, with the target column, the scores.

    `download_folder(settings, family)` makes the folder the CSV is written to (the Playground's).
    """
    if not path:
        raise gr.Error("Upload a CSV, xlsx or Parquet file with the model's input columns.", print_exception=False)
    if not run_id:
        raise gr.Error("Pick a finished run first.", print_exception=False)
    result = services.predict_table(int(run_id), Path(path), download_folder(services.settings, "predictions"))
    summary = f"Predicted **{result.rows:,}** rows."
    if result.missing_columns:
        summary += " Columns not in the file (treated as missing): " + ", ".join(
            f"`{c}`" for c in result.missing_columns) + "."
    metrics, confusion = result.metrics, ""
    if metrics and "accuracy" in metrics:
        summary += (f" Against `{result.target_column}`: accuracy **{metrics['accuracy']:.3f}**, macro F1 "
                    f"**{metrics['macro_f1']:.3f}**" + (f", ROC-AUC **{metrics['roc_auc']:.3f}**"
                                                        if "roc_auc" in metrics else "") + ".")
        confusion = confusion_html(metrics)
    elif metrics:
        summary += (f" Against `{result.target_column}`: RMSE **{metrics['rmse']:.4g}**, MAE **{metrics['mae']:.4g}**, "
                    f"R² **{metrics['r2']:.3f}**.")
    return str(result.csv_path), summary, result.preview, confusion


def build_table_panel(services: Services, run_picker: gr.Dropdown, visible: bool, download_folder) -> TablePanel:
    """The Playground's table panel: a form generated from the picked model's columns, and batch prediction.

    `download_folder` is the Playground's fresh_download_folder (passed in: the Playground imports this module).
    """
    private = {"api_visibility": "private"}
    with gr.Column(visible=visible, elem_id="table-panel") as panel:
        form_area, prediction, number = build_row_form(elem_prefix="")
        batch = build_batch_prediction("Upload a CSV, xlsx or Parquet file with the model's input columns (one row "
                                       "each). If it also has the target column, you get the scores too.",
                                       TABLE_FILE_TYPES, elem_prefix="table-")

    with form_area:
        @gr.render(inputs=run_picker)
        def render_form(run_id):
            try:
                fields = services.table_form(int(run_id)) if run_id else []
            except Exception:  # not a table model (its panel is hidden), or deleted meanwhile
                fields = []
            if not fields:
                return
            inputs = [form_input(field) for field in fields]
            button = gr.Button("Predict", variant="primary", elem_id="table-predict")
            button.click(_bound_predict(services, [f["column"] for f in fields], [f["kind"] for f in fields]),
                         [run_picker, *inputs], [prediction, number], **private)
        keep_render_private()

    on_batch_click(batch, partial(on_table_batch, services, download_folder), run_picker)
    run_picker.change(partial(on_show_table_panel, services), run_picker, [panel, prediction, number], **private)
    return TablePanel(panel=panel, prediction=prediction, number=number, batch_button=batch.button)


def keep_render_private() -> None:
    """gr.render registers its re-render as an "undocumented" endpoint, which API clients may call; like every
    handler but `predict` and `generate`, it stays private (the page still calls it)."""
    from gradio.context import get_blocks_context

    config = get_blocks_context()
    renderable = config.renderables[-1]
    for block_function in config.fns.values():
        if block_function.renderable is renderable:
            block_function.api_visibility = "private"


def _bound_predict(services: Services, columns: list[str], kinds: list[str]):
    """The form's click handler for these columns (a plain function of the run and the values)."""
    def predict(run_id, *values):
        return on_table_predict(services, run_id, columns, kinds, *values)
    return predict


# --- Runs tab --------------------------------------------------------------------------------

MOST_COLUMNS_SHOWN = 15


def importance_frame(metrics: dict) -> pd.DataFrame:
    """(column, importance) bars of a finished table model, largest first (empty for other runs)."""
    importance = (metrics or {}).get("feature_importance") or {}
    rows = sorted(((name, float(value.get("mean", 0.0))) for name, value in importance.items()),
                  key=lambda item: -item[1])[:MOST_COLUMNS_SHOWN]
    return pd.DataFrame({"column": pd.Series([name for name, _ in rows], dtype=str),
                         "importance": pd.Series([value for _, value in rows], dtype="float64")})


def on_show_importance(services: Services, run_id):
    """The permutation importance chart of the followed run; hidden when it has none (text runs, unfinished)."""
    try:
        frame = importance_frame(services.get_run(int(run_id)).metrics) if run_id else pd.DataFrame()
    except Exception:  # deleted meanwhile: the run view says so
        frame = pd.DataFrame()
    if frame.empty:
        return gr.update(visible=False)
    return gr.update(value=frame, visible=True, sort=frame["column"].tolist())


def scores_panel() -> tuple[gr.Markdown, gr.LinePlot, gr.ScatterPlot]:
    """The followed table model's final validation scores: a line of numbers, the precision-recall
    curve (two classes) and the predicted-vs-actual plot (regression); hidden until a run has them."""
    scores = gr.Markdown(visible=False, elem_id="table-scores")
    with gr.Row(equal_height=True):
        pr_curve = gr.LinePlot(x="recall", y="precision", title="Precision-recall curve (validation)", height=280,
                               x_lim=[0, 1], y_lim=[0, 1], visible=False, elem_id="pr-curve-plot")
        fit = gr.ScatterPlot(x="actual", y="predicted", title="Predicted vs actual (validation rows)", height=280,
                             visible=False, elem_id="fit-plot")
    return scores, pr_curve, fit


def on_show_scores(services: Services, run_id):
    """The scores panel of the followed run: what a table model's run measured at its end (others: hidden)."""
    hidden = gr.update(visible=False)
    try:
        run = services.get_run(int(run_id)) if run_id else None
        shown = run is not None and get_task(run.task).reads_rows and bool(run.metrics)
    except Exception:  # deleted meanwhile: the run view says so
        shown = False
    if not shown:
        return hidden, hidden, hidden
    metrics = run.metrics
    if "rmse" in metrics:
        text = (f"**Validation (best model):** RMSE **{metrics['rmse']:.4g}**, MAE **{metrics['mae']:.4g}**, "
                f"R² **{metrics['r2']:.3f}**")
        points = pd.DataFrame(metrics.get("predicted_vs_actual") or {"actual": [], "predicted": []}, dtype=float)
        return gr.update(value=text, visible=True), hidden, gr.update(value=points, visible=not points.empty)
    if "macro_f1" not in metrics:
        return hidden, hidden, hidden
    text = (f"**Validation (best model):** accuracy **{metrics['accuracy']:.3f}**, macro precision "
            f"**{metrics['macro_precision']:.3f}**, recall **{metrics['macro_recall']:.3f}**, F1 "
            f"**{metrics['macro_f1']:.3f}**" + (f", ROC-AUC **{metrics['roc_auc']:.3f}**" if "roc_auc" in metrics
                                                else ""))
    curve = pd.DataFrame(metrics.get("pr_curve") or {"recall": [], "precision": []}, dtype=float)
    return gr.update(value=text, visible=True), gr.update(value=curve, visible=not curve.empty), hidden


def importance_plot() -> gr.BarPlot:
    """A bar chart of the followed table model's permutation importances (hidden until a run has them)."""
    return gr.BarPlot(x="column", y="importance", title="Column importance (validation score drop when shuffled)",
                      height=280, x_label_angle=-30, y_lim=[0, None], visible=False, elem_id="importance-plot")
