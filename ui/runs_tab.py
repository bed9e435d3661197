"""Runs tab: every run, the selected one live (gr.Timer polls the DB), actions, and comparison.

Runs live in the database, not in the browser session: a reload, a second tab or a closed and
reopened page all find the same progress, because every view is rebuilt from the DB on a tick.
"""

from __future__ import annotations

from functools import partial

import gradio as gr
import pandas as pd

from backend.config import RUN_STATUSES
from backend.jobs import read_log_tail
from backend.services import Services
from storage.records import RunRecord
from ui.errors import shows_errors
from ui.formatting import (LOSS_KEYS, QUALITY_KEYS, confusion_frame, curves, per_class_table, progress_html,
                           run_choices, runs_table)
from ui.train_tab import TrainForm, fill_from_config

REFRESH_SECONDS = 2.0
ALL = "all"


def _dataset_names(services: Services) -> dict[int, str]:
    return {d.id: d.name for d in services.repo.list_datasets()}


def on_refresh_list(services: Services, status_filter: str, selected):
    """The runs table and the run pickers, filtered by status."""
    runs = services.repo.list_runs(None if status_filter in (None, ALL) else status_filter)
    everything = services.repo.list_runs()
    choices = run_choices(everything)
    keep = selected if selected in {r.id for r in everything} else (everything[0].id if everything else None)
    return runs_table(runs, _dataset_names(services)), gr.update(choices=choices, value=keep), gr.update(choices=choices)


def on_refresh_run(services: Services, run_id, shown: str | None = None):
    """Everything shown for one run: progress, curves, per-class table, confusion matrix, log, error.

    `shown` fingerprints what the page already shows; when nothing changed, every output is
    skipped, so a finished run's plots are not redrawn (and do not flicker) on every tick.
    """
    if not run_id:
        empty = curves([], {})
        return (progress_html(None, {}), "", empty, empty, pd.DataFrame(), pd.DataFrame(), "", gr.update(), None)
    run = services.repo.get_run(int(run_id))
    metrics = services.repo.get_metrics(run.id)
    fingerprint = f"{run.id}:{run.status}:{len(metrics)}:{run.progress}:{run.finished_at}"
    if fingerprint == shown:
        return (*[gr.skip()] * 8, shown)
    latest = {m.key: m.value for m in metrics}
    header = _run_header(run)
    return (progress_html(run, latest), header, curves(metrics, LOSS_KEYS), curves(metrics, QUALITY_KEYS),
            per_class_table(run.metrics), confusion_frame(run.metrics), read_log_tail(run.output_dir),
            gr.update(value=_error_text(run), visible=bool(run.error)), fingerprint)


def _run_header(run: RunRecord) -> str:
    config = run.config
    template = config.template.model_dump()
    settings = ", ".join(f"{k}={v}" for k, v in template.items() if k != "kind")
    return (f"### #{run.id} {run.name}\n{run.task} · **{run.template}** · dataset #{run.dataset_id} · "
            f"{config.epochs} epochs · batch {config.batch_size} · lr {config.learning_rate:g} · "
            f"max length {config.max_length}\n\n<small>{settings}</small>")


def _error_text(run: RunRecord) -> str:
    return f"**{run.status.capitalize()}:** {run.error}" if run.error else ""


@shows_errors
def on_stop(services: Services, run_id):
    """Stop the selected run (queued: at once; running: after its current step)."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    outcome = services.runner.stop(int(run_id))
    gr.Info("Cancelled." if outcome == "cancelled" else "Stopping after the current step…")
    return outcome


@shows_errors
def on_resume(services: Services, run_id):
    """Queue an interrupted or cancelled run again; it continues from its last checkpoint."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    services.runner.resume(int(run_id))
    gr.Info(f"Run #{run_id} queued to resume from its last checkpoint.")
    return "resumed"


@shows_errors
def on_delete(services: Services, run_id, confirmed: bool):
    """Delete the selected run (files and rows) once confirmed."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    if not confirmed:
        raise gr.Error("Tick “Yes, delete this run” to confirm: deleting cannot be undone.", print_exception=False)
    services.runner.delete(int(run_id))
    gr.Info(f"Run #{run_id} deleted.")
    return False


@shows_errors
def on_clone(services: Services, run_id):
    """Open the Train tab prefilled with the selected run's config."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    config = services.repo.get_run(int(run_id)).config
    return [gr.update(selected="train"), *fill_from_config(config)]


def on_compare(services: Services, run_ids, metric_key: str):
    """Overlaid curves of the chosen runs and a table of the settings and metrics that differ."""
    run_ids = [int(r) for r in (run_ids or [])]
    if len(run_ids) < 2:
        return curves([], {}), pd.DataFrame(
            {"": ["Pick two or more runs to compare."]})
    frames, columns = [], {}
    for run_id in run_ids:
        run = services.repo.get_run(run_id)
        frames.append(curves(services.repo.get_metrics(run_id, [metric_key]), {metric_key: metric_key},
                             run_name=f"#{run.id} {run.name}"))
        flat = {"template": run.template, "dataset": run.dataset_id, "status": run.status}
        config = run.config.model_dump()
        flat.update({k: v for k, v in config.items() if k not in ("template", "name")})
        flat.update({f"template.{k}": v for k, v in config["template"].items() if k != "kind"})
        flat.update({f"metric: {k}": round(v, 4) for k, v in run.metrics.items() if isinstance(v, (int, float))})
        columns[f"#{run.id} {run.name}"] = flat
    table = pd.DataFrame(columns)
    differing = table[table.astype(str).nunique(axis=1) > 1] if len(table) else table
    differing = differing.reset_index().rename(columns={"index": "setting / metric"})
    return pd.concat(frames, ignore_index=True), differing.astype(str)


def build_runs_tab(services: Services, train_form: TrainForm, tabs: gr.Tabs):
    """Lay out the Runs tab and its timers; returns (filter, run picker, outputs) for the page-load refresh."""
    runs = services.repo.list_runs()
    with gr.Row():
        status_filter = gr.Dropdown([ALL, *RUN_STATUSES], value=ALL, label="Show", scale=1)
        run_picker = gr.Dropdown(run_choices(runs), value=runs[0].id if runs else None, label="Run", scale=3,
                                 elem_id="run-picker")
    table = gr.Dataframe(runs_table(runs, _dataset_names(services)), interactive=False, max_height=260,
                         label="All runs")
    header = gr.Markdown()
    progress = gr.HTML(progress_html(None, {}), elem_id="run-progress")
    error = gr.Markdown(visible=False, elem_classes=["ms-error"])
    with gr.Row():
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop-run")
        resume_button = gr.Button("Resume", elem_id="resume-run")
        clone_button = gr.Button("Clone to Train tab")
        confirm = gr.Checkbox(label="Yes, delete this run", value=False)
        delete_button = gr.Button("Delete")
    action_state = gr.State()
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Loss", height=280)
        quality_plot = gr.LinePlot(x="step", y="value", color="series", title="Validation metrics", height=280)
    with gr.Row():
        per_class = gr.Dataframe(label="Per-class metrics (best checkpoint)", interactive=False)
        confusion = gr.Dataframe(label="Confusion matrix (rows: true, columns: predicted)", interactive=False)
    log_tail = gr.Textbox(label="Log (last lines)", lines=8, max_lines=12, interactive=False)
    with gr.Accordion("Compare runs", open=False):
        with gr.Row():
            compare_picker = gr.Dropdown(run_choices(runs), multiselect=True, label="Runs to compare", scale=3)
            compare_metric = gr.Dropdown(["eval_macro_f1", "eval_accuracy", "eval_loss", "train_loss",
                                          "eval_bits_per_char"], value="eval_macro_f1", label="Curve", scale=1)
            compare_button = gr.Button("Compare", scale=1)
        compare_plot = gr.LinePlot(x="step", y="value", color="series", title="Overlaid curves", height=300)
        compare_table = gr.Dataframe(label="Settings and metrics that differ", interactive=False)

    shown = gr.State()  # fingerprint of what this page shows (per browser tab)
    run_outputs = [progress, header, loss_plot, quality_plot, per_class, confusion, log_tail, error, shown]
    list_outputs = [table, run_picker, compare_picker]
    refresh_run = partial(on_refresh_run, services)
    refresh_list = partial(on_refresh_list, services)
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(refresh_list, [status_filter, run_picker], list_outputs, api_visibility="private",
               show_progress="hidden", queue=False)
    timer.tick(refresh_run, [run_picker, shown], run_outputs, api_visibility="private", show_progress="hidden",
               queue=False)
    status_filter.change(refresh_list, [status_filter, run_picker], list_outputs, api_visibility="private")
    run_picker.change(refresh_run, run_picker, run_outputs, api_visibility="private", show_progress="hidden")
    stop_button.click(partial(on_stop, services), run_picker, action_state, api_visibility="private")
    resume_button.click(partial(on_resume, services), run_picker, action_state, api_visibility="private")
    delete_button.click(partial(on_delete, services), [run_picker, confirm], confirm, api_visibility="private").then(
        refresh_list, [status_filter, run_picker], list_outputs, api_visibility="private")
    clone_button.click(partial(on_clone, services), run_picker, [tabs, *train_form.all_inputs],
                       api_visibility="private")
    compare_button.click(partial(on_compare, services), [compare_picker, compare_metric],
                         [compare_plot, compare_table], api_visibility="private")
    return status_filter, run_picker, list_outputs
