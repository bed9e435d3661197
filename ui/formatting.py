"""Plain functions that turn records into what components show: choices, tables, HTML, plot frames."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from backend.services import DatasetRecord, MetricRecord, RunRecord, list_tasks

LOSS_KEYS = {"train_loss": "train", "eval_loss": "validation"}
def quality_keys(task: str) -> dict[str, str]:
    """The validation-metric curves worth drawing for a task (every task's, for one this version lacks)."""
    tasks = {t.name: t for t in list_tasks()}
    if task in tasks:
        return dict(tasks[task].quality_curves)
    return {k: v for t in tasks.values() for k, v in t.quality_curves.items()}


def dataset_label(record: DatasetRecord) -> str:
    return f"#{record.id} {record.name} ({record.task}, {record.rows:,} rows)"


def dataset_choices(records: list[DatasetRecord]) -> list[tuple[str, int]]:
    """(label, id) pairs for a dropdown."""
    return [(dataset_label(r), r.id) for r in records]


def run_label(run: RunRecord) -> str:
    return f"#{run.id} {run.name} [{run.status}]"


def run_choices(runs: list[RunRecord]) -> list[tuple[str, int]]:
    return [(run_label(r), r.id) for r in runs]


def datasets_table(records: list[DatasetRecord]) -> pd.DataFrame:
    rows = [{"id": r.id, "name": r.name, "task": r.task, "rows": r.rows, "train": r.train_rows,
             "validation": r.validation_rows, "text column": r.text_column, "label column": r.label_column or "",
             "classes": ", ".join(f"{k}: {v}" for k, v in list(r.classes.items())[:6]),
             "created": _when(r.created_at)} for r in records]
    return pd.DataFrame(rows, columns=["id", "name", "task", "rows", "train", "validation", "text column",
                                       "label column", "classes", "created"])


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def duration(run: RunRecord, now: datetime | None = None) -> str:
    """Wall time of a run so far (or in all), as 1h02m / 3m05s / 12s."""
    if not run.started_at:
        return ""
    end = run.finished_at or (now or datetime.now(timezone.utc).replace(tzinfo=None))
    seconds = max(int((end - run.started_at).total_seconds()), 0)
    return format_seconds(seconds)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def best_metric(run: RunRecord) -> str:
    """The run's headline number: macro F1 for classifiers, bits/char for language models."""
    metrics = run.metrics or {}
    if "macro_f1" in metrics:
        return f"macro F1 {metrics['macro_f1']:.3f}"
    if "bits_per_char" in metrics:
        return f"{metrics['bits_per_char']:.3f} bits/char"
    task = {t.name: t for t in list_tasks()}.get(run.task)  # others (a table regressor's RMSE): the task's metric
    if task is not None and isinstance(metrics.get(task.best_metric), (int, float)):
        return f"{task.best_metric_label.removeprefix('validation ')} {metrics[task.best_metric]:.4g}"
    return ""


def run_origin(run: RunRecord) -> str:
    """Where a run's model came from: its dataset, or the file it was imported from."""
    if run.dataset_id is None:
        return f"imported from {run.imported_from}" if run.imported_from else "imported"
    return f"dataset #{run.dataset_id}"


def runs_table(runs: list[RunRecord], dataset_names: dict[int, str],
               best_so_far: dict[int, str] | None = None) -> pd.DataFrame:
    """One row per run; `best_so_far` fills *best* for runs still training (their final metrics come at the end)."""
    best_so_far = best_so_far or {}
    rows = [{"id": r.id, "name": r.name, "task": r.task, "template": r.template,
             "dataset": run_origin(r) if r.dataset_id is None else dataset_names.get(r.dataset_id, f"#{r.dataset_id}"),
             "status": r.status, "progress": f"{r.progress * 100:.0f}%",
             "best": best_metric(r) or best_so_far.get(r.id, ""),
             # An imported run was not trained here: its start and end are the import's moment.
             "duration": "" if r.dataset_id is None else duration(r), "started": _when(r.started_at)} for r in runs]
    return pd.DataFrame(rows, columns=["id", "name", "task", "template", "dataset", "status", "progress", "best",
                                       "duration", "started"])


def progress_html(run: RunRecord | None, latest: dict[str, float]) -> str:
    """A progress bar with step count and ETA."""
    if run is None:
        return "<div class='ms-muted'>Select a run to follow it.</div>"
    percent = max(0.0, min(100.0, run.progress * 100))
    details = [f"<b>{html.escape(run.status)}</b>"]
    if "total_steps" in latest and run.status in ("running", "queued"):
        details.append(f"step ~{int(round(run.progress * latest['total_steps']))} of {int(latest['total_steps'])}")
    if run.status == "running" and "eta_seconds" in latest:
        details.append(f"ETA {format_seconds(latest['eta_seconds'])} (at this run's measured pace)")
    if "samples_per_second" in latest and run.status == "running":
        details.append(f"{latest['samples_per_second']:.0f} samples/s")
    if run.started_at:
        details.append(f"elapsed {duration(run)}")
    color = {"failed": "#dc2626", "cancelled": "#9ca3af", "interrupted": "#f59e0b"}.get(run.status, "#4f46e5")
    return (f"<div class='ms-progress' data-progress='{percent:.1f}'>"
            f"<div style='background:#e5e7eb;border-radius:6px;height:18px;overflow:hidden'>"
            f"<div style='width:{percent:.1f}%;background:{color};height:100%;transition:width .5s'></div></div>"
            f"<div style='margin-top:4px'><span class='ms-percent'>{percent:.0f}%</span> · "
            f"{' · '.join(details)}</div></div>")


def curves(metrics: list[MetricRecord], keys: dict[str, str], run_name: str | None = None,
           every_series: bool = False) -> pd.DataFrame:
    """Long-format frame (step, value, series) for a LinePlot; `series` gets the run name when comparing.

    Rows come in the order of `keys`, so each series keeps its colour from run to run.
    `every_series` adds one empty (NaN) point for each series without values yet: Gradio's plot fixes
    its colour domain from the first frame it draws, so a series that appears later (validation loss
    after the first evaluation) would otherwise never be drawn.
    """
    order = {key: index for index, key in enumerate(keys)}
    rows = [(order[m.key], m.step, m.value, m.key) for m in metrics if m.key in keys]
    if every_series:
        first = min((row[1] for row in rows), default=0)
        present = {row[3] for row in rows}
        rows += [(order[key], first, float("nan"), key) for key in keys if key not in present]
    rows.sort(key=lambda row: (row[0], row[1]))
    names = [f"{run_name}: {keys[row[3]]}" if run_name else keys[row[3]] for row in rows]
    # Typed columns even when empty: the plot picks quantitative axes from the first value it gets.
    return pd.DataFrame({"step": pd.Series([row[1] for row in rows], dtype="int64"),
                         "value": pd.Series([row[2] for row in rows], dtype="float64"),
                         "series": pd.Series(names, dtype=str)})


def per_class_table(metrics: dict) -> pd.DataFrame:
    per_class = metrics.get("per_class") or {}
    rows = [{"class": label, **{k: round(float(v), 4) if isinstance(v, float) else v for k, v in values.items()}}
            for label, values in per_class.items()]
    return pd.DataFrame(rows)


def confusion_frame(metrics: dict) -> pd.DataFrame:
    """Confusion matrix as a table: rows are true classes, columns predicted ones."""
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if not matrix or not labels:
        return pd.DataFrame()
    frame = pd.DataFrame(np.asarray(matrix), columns=[f"pred: {l}" for l in labels])
    frame.insert(0, "true", labels)
    return frame


def _nice_width(span: float, bins: int) -> int:
    """A round bin width (1, 2, 5, 10, 20, 50, ...) giving at most about `bins` bins."""
    raw = max(span / bins, 1.0)
    magnitude = 10 ** int(np.floor(np.log10(raw)))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def histogram(lengths: list[int], bins: int = 20) -> pd.DataFrame:
    """(range, count) bars of text lengths in characters, with round bin edges."""
    if not lengths:
        return pd.DataFrame({"length": pd.Series([], dtype=str), "count": pd.Series([], dtype="int64")})
    values = np.asarray(lengths, dtype=np.int64)
    # Cut the long tail at the 99th percentile so one huge text does not squash every bar.
    top = int(np.percentile(values, 99)) if len(values) >= 100 else int(values.max())
    width = _nice_width(top - values.min() + 1, bins)
    start = int(values.min()) // width * width
    edges = list(range(start, top + width + 1, width))
    counts, _ = np.histogram(np.clip(values, start, edges[-1] - 1), bins=edges)
    labels = [str(lo) if width == 1 else f"{lo}–{lo + width - 1}" for lo in edges[:-1]]
    if top < values.max():  # the last bar also counts the tail
        labels[-1] = f"{edges[-2]}+"
    return pd.DataFrame({"length": pd.Series(labels, dtype=str), "count": counts.astype("int64")})


def class_counts(classes: dict[str, int]) -> pd.DataFrame:
    """(class, rows) bars, most frequent first."""
    ordered = sorted(classes.items(), key=lambda item: (-item[1], item[0]))
    return pd.DataFrame({"class": pd.Series([k for k, _ in ordered], dtype=str),
                         "rows": pd.Series([v for _, v in ordered], dtype="int64")})


def confusion_html(metrics: dict) -> str:
    """Confusion matrix as a heat-map table: rows are true classes, columns predicted ones."""
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if not matrix or not labels:
        return ""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    head = "".join(f"<th>{html.escape(str(label))}</th>" for label in labels)
    rows = []
    for label, row, share_row in zip(labels, counts, shares):
        cells = "".join(
            f"<td style='background:rgba(79,70,229,{0.08 + 0.8 * share:.2f});color:{'#fff' if share > 0.55 else 'inherit'}'"
            f" title='{share:.0%} of true {html.escape(str(label))}'>{int(value):,}</td>"
            for value, share in zip(row, share_row))
        rows.append(f"<tr><th>{html.escape(str(label))}</th>{cells}</tr>")
    return ("<div class='ms-confusion'><div class='ms-caption'>Confusion matrix — rows: true class, "
            "columns: predicted class</div><table><tr><th class='ms-corner'>true ↓ · predicted →</th>"
            f"{head}</tr>{''.join(rows)}</table></div>")


PREVIEW_TEXT_CHARS = 200


def predictions_first(preview: pd.DataFrame) -> pd.DataFrame:
    """Batch predictions for the page: predicted label and scores first, long texts cut, so a long
    text column cannot push the prediction off-screen (the CSV keeps every column whole)."""
    first = [c for c in preview.columns if c == "predicted_label" or str(c).startswith("score_")]
    rest = [c for c in preview.columns if c not in first]
    shown = preview[first + rest].copy()
    for column in rest:
        if shown[column].dtype == object or pd.api.types.is_string_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: v if not isinstance(v, str) or len(v) <= PREVIEW_TEXT_CHARS
                                              else v[:PREVIEW_TEXT_CHARS] + "…")
    return shown


def error_box(message: str) -> str:
    """A message that stands out, for a report or status area."""
    return f"<div class='ms-error'>⚠ {html.escape(message)}</div>"


def readable_number(value: float) -> str:
    """A number for a hint a person reads and may type back: 1484705, 12.5, 0.0003007 (never 1.4847e+06).

    No thousands separators: a number box would not take "1,484,705" pasted back.
    """
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def format_bytes(size: float) -> str:
    """1.5 GB / 230 MB / 12 KB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            value = size / scale
            return f"{value:,.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{int(size)} bytes"


def corpus_markdown(summary: dict, overview: dict) -> str:
    """The report of a text-generation corpus: size, vocabulary, the split in characters, a sample."""
    total = max(overview["characters"], 1)
    lines = [f"### Dataset #{summary['dataset_id']} — {summary['name']}"
             + (" (already stored: reused)" if summary.get("reused") else ""),
             f"- **Characters:** {overview['characters']:,} in {overview['lines']:,} lines "
             f"({overview['words']:,} words)",
             f"- **Vocabulary:** {overview['distinct_characters']:,} distinct characters, "
             f"{overview['distinct_words']:,} distinct words",
             f"- **Split:** training {overview['train_characters']:,} characters "
             f"({overview['train_characters'] / total:.0%}), validation {overview['validation_characters']:,} "
             f"({overview['validation_characters'] / total:.0%})",
             f"- **Text column:** `{summary['text_column']}`",
             "", "**Sample (start of the training text)**", "", "```text", overview["sample"].replace("```", "ˋˋˋ"),
             "```"]
    warnings = summary.get("warnings") or []
    if warnings:
        lines.append("\n**Warnings**")
        lines.extend(f"- Warning: {w}" for w in warnings)
    return "\n".join(lines)


def report_markdown(summary: dict, report: dict) -> str:
    """The validation report as Markdown: numbers first, then warnings."""
    lines = [f"### Dataset #{summary['dataset_id']} — {summary['name']}"
             + (" (already stored: reused)" if summary.get("reused") else ""),
             f"- **Rows:** {summary['rows']:,} (training {summary['train_rows']:,}, "
             f"validation {summary['validation_rows']:,})",
             f"- **Text column:** `{summary['text_column']}`"
             + (f" · **Label column:** `{summary['label_column']}`" if summary.get("label_column") else "")]
    for key, title in (("empty_rows_dropped", "Empty texts dropped"), ("nan_labels_dropped", "Empty labels dropped"),
                       ("exact_duplicates", "Exact duplicate rows"),
                       ("conflicting_duplicates", "Duplicate texts with conflicting labels"),
                       ("train_validation_overlap", "Texts in both training and validation")):
        if key in report:
            lines.append(f"- **{title}:** {report[key]:,}")
    if summary.get("classes"):
        lines.append("- **Classes:** " + ", ".join(f"{k} ({v:,})" for k, v in summary["classes"].items()))
    length = (report.get("text_length") or {}).get("chars")
    if length:
        lines.append(f"- **Text length (chars):** median {length.get('median', 0):,.0f}, "
                     f"95th percentile {length.get('p95', 0):,.0f}, longest {length.get('max', 0):,.0f}")
    if "long_text_share" in report:
        lines.append(f"- **Longer than {report.get('token_budget', 128)} tokens (estimate):** "
                     f"{report['long_text_share'] * 100:.1f}% of texts")
    for key in ("characters", "distinct_characters"):
        if key in report:
            lines.append(f"- **{key.replace('_', ' ').capitalize()}:** {report[key]:,}")
    warnings = summary.get("warnings") or []
    if warnings:
        lines.append("\n**Warnings**")
        lines.extend(f"- Warning: {w}" for w in warnings)
    return "\n".join(lines)
