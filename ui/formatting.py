"""Plain functions that turn records into what components show: choices, tables, HTML, plot frames."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from storage.records import DatasetRecord, MetricRecord, RunRecord

LOSS_KEYS = {"train_loss": "train", "eval_loss": "validation"}
QUALITY_KEYS = {"eval_accuracy": "accuracy", "eval_macro_f1": "macro F1", "eval_macro_precision": "macro precision",
                "eval_macro_recall": "macro recall", "eval_bits_per_char": "bits/char",
                "eval_perplexity": "perplexity"}


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
    return ""


def runs_table(runs: list[RunRecord], dataset_names: dict[int, str]) -> pd.DataFrame:
    rows = [{"id": r.id, "name": r.name, "task": r.task, "template": r.template,
             "dataset": dataset_names.get(r.dataset_id, "" if r.dataset_id is None else f"#{r.dataset_id}"),
             "status": r.status, "progress": f"{r.progress * 100:.0f}%",
             "best": best_metric(r), "duration": duration(r), "started": _when(r.started_at)} for r in runs]
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
        details.append(f"ETA {format_seconds(latest['eta_seconds'])}")
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


def curves(metrics: list[MetricRecord], keys: dict[str, str], run_name: str | None = None) -> pd.DataFrame:
    """Long-format frame (step, value, series) for a LinePlot; `series` gets the run name when comparing."""
    chosen = [m for m in metrics if m.key in keys]
    # Typed columns even when empty: the plot picks quantitative axes from the first value it gets.
    return pd.DataFrame({
        "step": pd.Series([m.step for m in chosen], dtype="int64"),
        "value": pd.Series([m.value for m in chosen], dtype="float64"),
        "series": pd.Series([f"{run_name}: {keys[m.key]}" if run_name else keys[m.key] for m in chosen], dtype=str)})


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


def histogram(lengths: list[int], bins: int = 20) -> pd.DataFrame:
    """(range, count) bars of text lengths in characters."""
    if not lengths:
        return pd.DataFrame(columns=["length", "count"])
    counts, edges = np.histogram(np.asarray(lengths), bins=min(bins, max(1, len(set(lengths)))))
    return pd.DataFrame({"length": [f"{int(edges[i])}–{int(edges[i + 1])}" for i in range(len(counts))],
                         "count": counts.astype(int)})


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
