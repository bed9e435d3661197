"""Runs tab: every run, the selected one live (gr.Timer polls the DB), actions, and comparison.

Runs live in the database, not in the browser session: a reload, a second tab or a closed and
reopened page all find the same progress, because every view is rebuilt from the DB on a tick.
Each page remembers a fingerprint of what it shows (a gr.State), so a tick that finds nothing
new sends nothing: finished runs are not redrawn every two seconds, and open dropdowns stay open.
"""

from __future__ import annotations

import asyncio
import html
from functools import partial

import anyio
import gradio as gr
import pandas as pd

from backend.config import RESUMABLE_STATUSES, RUN_STATUSES
from backend.jobs.reporting import read_log_tail
from backend.training.phases import METRICS_KEY as TIMING_KEY
from backend.training.phases import describe as describe_phases
from backend.services import NotFound, RunRecord, Services, default_task, get_task, task_names, task_of_run
from ui.errors import shows_errors, unchanged
from ui.formatting import (LOSS_KEYS, confusion_html, curves, per_class_table, progress_html, quality_keys,
                           run_choices, run_origin, runs_table)
from ui.image_panels import build_misclassified_gallery
from ui.plots import curve_plot, step_range
from ui.tabular_panels import importance_plot, on_show_importance, on_show_scores, scores_panel
from ui.train_tab import TrainForm, fill_from_config, form_fields

REFRESH_SECONDS = 2.0
LOG_LINES = 12
ALL = "all"
COMPARE_METRICS = [("validation macro F1", "eval_macro_f1"), ("validation accuracy", "eval_accuracy"),
                   ("validation loss", "eval_loss"), ("training loss", "train_loss"),
                   ("validation bits per character", "eval_bits_per_char"), ("validation perplexity", "eval_perplexity")]
RUN_VIEW_SIZE = 15  # outputs of on_refresh_run
LEARNING_RATE_KEYS = {"learning_rate": "learning rate"}
FINISHED_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
CLONE_OUTPUTS = 1 + 4 + len(form_fields())  # the tabs, then TrainForm.all_inputs


# The browser tab's title says a run ended (seen from another tab); it returns to normal on focus.
TITLE_JS = """(notice) => {
  if (notice) {
    document.title = "✓ " + notice + " · Modelsmith";
    window.addEventListener("focus", () => { document.title = "Modelsmith"; }, {once: true});
  }
  return notice;
}"""


def _dataset_names(services: Services) -> dict[int, str]:
    return {d.id: d.name for d in services.list_datasets()}


def run_to_follow(runs: list[RunRecord]):
    """The run a freshly opened page follows: one that is training, else the newest."""
    running = [r.id for r in runs if r.status == "running"]
    return running[0] if running else (runs[0].id if runs else None)


def runs_ended_since(services: Services, seen: tuple | None) -> tuple[tuple, list[RunRecord]]:
    """(what this page has seen now, the runs that ended since it last looked).

    `seen` is (ids queued or running, newest run id). A run that ended counts if the page saw it
    active, or if it is newer than any the page had seen (a short run can start and end between
    two looks). A page that just opened (`seen` None) has no news: runs that ended before are not.
    """
    runs = services.list_runs()
    now = (sorted(r.id for r in runs if r.status in ("queued", "running")), max((r.id for r in runs), default=0))
    if seen is None:
        return now, []
    active, newest = seen
    return now, [r for r in runs if (r.id in active or r.id > newest) and r.status in FINISHED_STATUSES]


def ended_sentence(run: RunRecord) -> str:
    return f"Run #{run.id} “{run.name}” {run.status}."


def notice_of(ended: list[RunRecord]):
    """The notice for the tab title: 'Run #3 “spam” succeeded.', or gr.skip() when nothing ended."""
    return " ".join(ended_sentence(r) for r in ended) or gr.skip()


def on_refresh_list(services: Services, status_filter: str | None, selected, shown=None):
    """The runs table and the run pickers; skipped when nothing changed.

    `shown` is (fingerprint, newest run id) of what the page shows. A run newer than the page has
    seen gets selected, so launching a run and opening this tab follows it; a page opened afresh
    follows the run that is training, not a newer queued one.
    """
    everything = services.list_runs()
    newest = everything[0].id if everything else None
    names = _dataset_names(services)
    fingerprint = (status_filter, selected, tuple((r.id, r.name, r.status, round(r.progress, 3), bool(r.metrics),
                                                   r.finished_at) for r in everything), tuple(names.items()))
    if shown is not None and shown[0] == fingerprint:
        return gr.skip(), gr.skip(), gr.skip(), shown
    ids = {r.id for r in everything}
    seen_newest = shown[1] if shown else None
    if shown is None:
        keep = run_to_follow(everything)
    elif newest is not None and seen_newest is not None and newest > seen_newest:
        keep = newest
    else:
        keep = selected if selected in ids else newest
    shown_runs = everything if status_filter in (None, "", ALL) else [r for r in everything if r.status == status_filter]
    choices = run_choices(everything)
    fingerprint = (status_filter, keep, *fingerprint[2:])
    table = runs_table(shown_runs, names, services.best_so_far_by_run(shown_runs))
    return table, gr.update(choices=choices, value=keep), gr.update(choices=choices), (fingerprint, newest)


def toast_runs_ended(ended: list[RunRecord]) -> None:
    """One toast per ended run: a success toast for a run that succeeded, a warning for the others.

    Never an info toast: Gradio 6 groups toasts by type, and a group whose first toast has a
    duration closes every toast in it when that duration ends. The "Run #3 queued." info toast
    (10 s) therefore took a run-finished info toast with it when the run ended within 10 s of its
    launch (a 1-epoch toy run does): the notice was sent, the toast showed and was closed at once.
    Nothing else in the app sends a success toast, so that group only holds these, and they stay
    until closed (duration=None).
    """
    for run in ended:
        if run.status == "succeeded":
            gr.Success(ended_sentence(run), title="Training finished", duration=None)
        else:
            gr.Warning(ended_sentence(run), title="Training ended", duration=None)


async def watch_runs(services: Services, every_seconds: float):
    """For as long as the page is open: a toast (and the notice, for the tab title) when a run ends.

    One long-lived event per page (started on load) rather than a queued event per timer tick:
    fewer requests, and the page's event stream stays open while it runs. Gradio stops iterating
    it once the page is gone.
    """
    seen = None
    while True:
        seen, ended = await anyio.to_thread.run_sync(runs_ended_since, services, seen)
        toast_runs_ended(ended)
        yield notice_of(ended)
        await asyncio.sleep(every_seconds)


def _empty_view(message: str = "Select a run to follow it."):
    frame = curves([], LOSS_KEYS, every_series=True)
    quality = curves([], quality_keys(default_task().name), every_series=True)
    off = gr.update(interactive=False)
    return (f"<div class='ms-muted'>{html.escape(message)}</div>", "", gr.update(value=frame),
            gr.update(value=quality, y_lim=[0, 1]), gr.update(visible=False), pd.DataFrame(), "", "",
            gr.update(value="", visible=False), off, off, off, gr.update(value=curves([], LEARNING_RATE_KEYS)),
            gr.update(visible=False), None)


def on_refresh_run(services: Services, run_id, shown: str | None = None):
    """Everything shown for one run: progress, curves, per-class table, confusion matrix, log, error, actions.

    `shown` fingerprints what the page already shows; when nothing changed, every output is
    skipped, so a finished run's plots are not redrawn (and do not flicker) on every tick.
    """
    if not run_id:
        return _empty_view()
    try:
        run = services.get_run(int(run_id))
    except NotFound:
        return _empty_view(f"Run #{run_id} no longer exists. Pick another run.")
    metrics = services.get_metrics(run.id)
    fingerprint = f"{run.id}:{run.status}:{len(metrics)}:{run.progress}:{run.finished_at}:{run.error}"
    if fingerprint == shown:
        return (*[gr.skip()] * (RUN_VIEW_SIZE - 1), shown)
    latest = {m.key: m.value for m in metrics}
    per_class = per_class_table(run.metrics)
    confusion = confusion_html(run.metrics)
    has_curves = bool(metrics)  # an imported run carries final metrics only: no empty plots for it
    # A gbdt regression logs no loss curve at all (its validation curves are RMSE and MAE): no empty plot.
    has_loss = any(m.key in LOSS_KEYS for m in metrics)
    # One x-axis for all three plots, over every curve drawn (a gbdt regression's rounds are only in RMSE/MAE).
    steps = step_range(curves(metrics, {**LOSS_KEYS, **quality_keys(run.task), **LEARNING_RATE_KEYS}))
    # A live run's plots hold a place for every series that may come; a run that is over shows only
    # those it logged (a gbdt run has no training loss and no per-round macro F1: no empty legend entries).
    live = run.status in ("queued", "running")
    return (progress_html(run, latest), _run_header(run),
            gr.update(value=curves(metrics, LOSS_KEYS, every_series=live), visible=has_curves and (live or has_loss),
                      x_lim=steps),
            gr.update(value=curves(metrics, quality_keys(run.task), every_series=live), visible=has_curves,
                      y_lim=_quality_range(run.task), x_lim=steps),
            gr.update(visible=not per_class.empty or bool(confusion)), per_class, confusion,
            read_log_tail(run.output_dir, LOG_LINES),
            gr.update(value=_error_text(run), visible=bool(run.error)),
            gr.update(interactive=run.status in ("queued", "running")),
            gr.update(interactive=run.status in RESUMABLE_STATUSES),
            gr.update(interactive=run.status != "running"),
            # hidden until a rate was logged: an empty plot draws a collapsed axis
            gr.update(value=curves(metrics, LEARNING_RATE_KEYS), x_lim=steps,
                      visible=any(m.key in LEARNING_RATE_KEYS for m in metrics)),
            gr.update(visible=task_of_run(run).panel == "classify" and run.dataset_id is not None
                      and run.status == "succeeded"),
            fingerprint)


def _quality_range(task: str):
    # Scores of a classifier live in [0, 1]; a fixed axis keeps a flat 1.0 line readable. Bits per
    # char start near 4-10: [0, None] scales to them (None alone would keep the plot's earlier [0, 1]).
    return list(get_task(task).quality_range) if task in task_names() else [0, None]


def on_hide_plots():
    """Hide the curves before another run is drawn: showing them again rebuilds their legend and axes.

    The misclassified examples of the previous run go too.
    """
    return gr.update(visible=False), gr.update(visible=False), gr.update(visible=False), None, pd.DataFrame()


def _run_header(run: RunRecord) -> str:
    config = run.config
    template = config.template.model_dump()
    settings = ", ".join(f"{k}={v}" for k, v in template.items() if k != "kind")
    # A language model trains max_steps when set (else epochs) and reads block_size, not max_length.
    task = task_of_run(run)
    # Settings the run never read (gbdt: epochs and batch size) would only mislead here.
    ignored = {*task.ignored_settings, *type(config.template).ignored_settings}
    if task.uses_max_steps and config.max_steps:
        duration = f"{config.max_steps} steps"
    else:
        duration = "" if "epochs" in ignored else plural(config.epochs, "epoch")
    facts = [duration, "" if "batch_size" in ignored else f"batch {config.batch_size}",
             f"learning rate {config.learning_rate:g}",
             f"max length {config.max_length}" if task.uses_max_length else ""]
    header = (f"### #{run.id} {run.name}\n{run.task} · **{run.template}** · {run_origin(run)}"
              + "".join(f" · {fact}" for fact in facts if fact) + f"\n\n<small>{settings}</small>")
    if run.dataset_id is None:  # imported: its curves stay where it was trained
        header += "\n\n" + _carried_metrics(run.metrics)
    timing = describe_phases((run.metrics or {}).get(TIMING_KEY))
    if timing:  # measured in the run's last session (a resume starts a new one)
        header += f"\n\n**Where the time went:** {timing}"
    return header


def _carried_metrics(metrics: dict) -> str:
    """The validation metrics an imported zip carried (its training curves stay where it was trained)."""
    scalars = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not scalars:
        return "_The imported model carried no metrics._"
    rows = "\n".join(f"| {k.replace('_', ' ')} | {v:.4g} |" for k, v in scalars.items())
    return f"**Metrics from the imported zip** (measured where it was trained)\n\n| metric | value |\n|---|---|\n{rows}"


def plural(count: int, word: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _error_text(run: RunRecord) -> str:
    return f"**{run.status.capitalize()}:** {run.error}" if run.error else ""


@shows_errors(fallback=unchanged(1))
def on_stop(services: Services, run_id):
    """Stop the selected run (queued: at once; running: after its current step)."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    outcome = services.runner.stop(int(run_id))
    gr.Info("Cancelled." if outcome == "cancelled" else "Stopping after the current step…")
    return outcome


@shows_errors(fallback=unchanged(1))
def on_resume(services: Services, run_id):
    """Queue an interrupted or cancelled run again; it continues from its last checkpoint."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    services.runner.resume(int(run_id))
    gr.Info(f"Run #{run_id} queued to resume from its last checkpoint.")
    return "resumed"


@shows_errors(fallback=unchanged(1))
def on_delete(services: Services, run_id, confirmed: bool):
    """Delete the selected run (files and rows) once confirmed; refused while it trains."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    if not confirmed:
        raise gr.Error("Tick “Yes, delete this run” to confirm: deleting cannot be undone.", print_exception=False)
    services.runner.delete(int(run_id))
    gr.Info(f"Run #{run_id} deleted.")
    return False


@shows_errors(fallback=unchanged(CLONE_OUTPUTS))
def on_clone(services: Services, run_id):
    """Open the Train tab prefilled with the selected run's config."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    run = services.get_run(int(run_id))
    if run.dataset_id is None:
        gr.Info(f"Settings of run #{run_id} copied. It was imported and has no dataset here: pick one, then launch.")
    else:
        gr.Info(f"Settings of run #{run_id} copied: change what you like, then launch.")
    # The run row, not the config, says which dataset: an imported run's config may name an id
    # from another database (runs imported before migration 0004 carry a placeholder 1).
    config = run.config.model_copy(update={"dataset_id": run.dataset_id})
    return (gr.update(selected="train"), *fill_from_config(config))


@shows_errors(fallback=unchanged(1))
def on_misclassified(services: Services, run_id):
    """Validation texts the selected run's model gets wrong (text, true, predicted, confidence)."""
    if not run_id:
        raise gr.Error("Pick a run first.", print_exception=False)
    frame = services.misclassified(int(run_id))
    if frame.empty:
        gr.Info("The model classifies every validation text it was checked on correctly.")
    return frame


def on_table_select(evt: gr.SelectData):
    """Clicking a row of the runs table follows that run."""
    row = evt.row_value or []
    return int(row[0]) if row and str(row[0]).isdigit() else gr.skip()


def on_compare(services: Services, run_ids, metric_key: str):
    """Overlaid curves of the chosen runs and a table of the settings and metrics that differ."""
    run_ids = [int(r) for r in (run_ids or [])]
    if len(run_ids) < 2:
        return (gr.update(value=curves([], {}), visible=False),
                pd.DataFrame({"": ["Pick two or more runs to compare."]}))
    label = dict((key, name) for name, key in COMPARE_METRICS).get(metric_key, metric_key)
    frames, columns = [], {}
    for run_id in run_ids:
        try:
            run = services.get_run(run_id)
        except NotFound:
            continue
        frames.append(curves(services.get_metrics(run_id, [metric_key]), {metric_key: label},
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
    # Shown again after on_hide_compare: the plot rebuilds its legend for these runs.
    frame = pd.concat(frames, ignore_index=True)
    return gr.update(value=frame, visible=True, x_lim=step_range(frame)), differing.astype(str)


def build_runs_tab(services: Services, train_form: TrainForm, tabs: gr.Tabs):
    """Lay out the Runs tab and its timer; returns (filter, run picker, outputs, list state) for the page load."""
    runs = services.list_runs()
    with gr.Row(equal_height=True):
        status_filter = gr.Dropdown([ALL, *RUN_STATUSES], value=ALL, label="Show runs", scale=1)
        run_picker = gr.Dropdown(run_choices(runs), value=run_to_follow(runs), label="Follow run", scale=3,
                                 elem_id="run-picker")
    table = gr.Dataframe(runs_table(runs, _dataset_names(services), services.best_so_far_by_run(runs)),
                         interactive=False, max_height=260,
                         label="All runs (click a row to follow it)", elem_id="runs-table")
    header = gr.Markdown()
    progress = gr.HTML(progress_html(None, {}), elem_id="run-progress")
    error = gr.Markdown(visible=False, elem_classes=["ms-error"])
    with gr.Row(equal_height=True):
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop-run", interactive=False)
        resume_button = gr.Button("Resume", elem_id="resume-run", interactive=False)
        clone_button = gr.Button("Clone to Train tab", elem_id="clone-run")
        confirm = gr.Checkbox(label="Yes, delete this run", value=False)
        delete_button = gr.Button("Delete", elem_id="delete-run", interactive=False)
    action_state = gr.State()
    with gr.Row():
        loss_plot = curve_plot(title="Loss", height=280, elem_id="loss-plot")
        quality_plot = curve_plot(title="Validation metrics", height=280, y_lim=[0, 1], elem_id="quality-plot")
        lr_plot = curve_plot(title="Learning rate", height=280, elem_id="lr-plot")
    with gr.Row(visible=False, equal_height=False) as details:
        per_class = gr.Dataframe(label="Per-class metrics (best checkpoint)", interactive=False, scale=1)
        confusion = gr.HTML(elem_id="confusion")
    table_scores = scores_panel()   # table models: ROC-AUC and the PR curve, or R² and predicted vs actual
    importance = importance_plot()
    with gr.Accordion("Misclassified validation examples", open=False, visible=False) as mistakes_box:
        mistakes_button = gr.Button("Find misclassified examples", elem_id="find-misclassified", size="sm")
        mistakes = gr.Dataframe(label="Most confident mistakes first", interactive=False, max_height=300, wrap=True,
                                elem_id="misclassified")
    log_tail = gr.Textbox(label="Log (last lines)", lines=6, max_lines=LOG_LINES + 4, interactive=False,
                          autoscroll=True)
    build_misclassified_gallery(services, run_picker)  # image runs: their mistakes as pictures
    with gr.Accordion("Compare runs", open=False):
        with gr.Row(equal_height=True):
            compare_picker = gr.Dropdown(run_choices(runs), multiselect=True, label="Runs to compare", scale=3,
                                         elem_id="compare-picker")
            compare_metric = gr.Dropdown(COMPARE_METRICS, value="eval_macro_f1", label="Curve", scale=1)
            compare_button = gr.Button("Compare", scale=1, elem_id="compare")
        compare_plot = curve_plot(title="Overlaid curves", height=300, visible=False, elem_id="compare-plot")
        compare_table = gr.Dataframe(label="Settings and metrics that differ", interactive=False)

    run_shown = gr.State()  # fingerprint of the run view this page shows (per browser tab)
    # Table models: which columns mattered (ui/tabular_panels.py); redrawn when the run's progress changes
    # (a component, not run_shown: a State set by a timer runs no listener in the browser).
    progress.change(partial(on_show_importance, services), run_picker, importance, show_progress="hidden",
                    api_visibility="private")
    progress.change(partial(on_show_scores, services), run_picker, list(table_scores), show_progress="hidden",
                    api_visibility="private")
    list_shown = gr.State()  # (fingerprint, newest run id) of the runs list this page shows
    run_outputs = [progress, header, loss_plot, quality_plot, details, per_class, confusion, log_tail, error,
                   stop_button, resume_button, delete_button, lr_plot, mistakes_box, run_shown]
    list_outputs = [table, run_picker, compare_picker, list_shown]
    refresh_run = partial(on_refresh_run, services)
    refresh_list = partial(on_refresh_list, services)
    private = {"api_visibility": "private"}
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(refresh_list, [status_filter, run_picker, list_shown], list_outputs, show_progress="hidden",
               queue=False, **private)
    timer.tick(refresh_run, [run_picker, run_shown], run_outputs, show_progress="hidden", queue=False, **private)
    status_filter.change(lambda: None, None, list_shown, **private).then(
        refresh_list, [status_filter, run_picker, list_shown], list_outputs, **private)
    mistakes_button.click(partial(on_misclassified, services), run_picker, mistakes, **private)
    run_picker.change(on_hide_plots, None, [loss_plot, quality_plot, lr_plot, run_shown, mistakes], **private).then(
        refresh_run, run_picker, run_outputs, show_progress="hidden", **private)
    table.select(on_table_select, None, run_picker, **private)

    def then_refresh(event):
        event.then(refresh_run, run_picker, run_outputs, show_progress="hidden", **private).then(
            lambda: None, None, list_shown, **private).then(
            refresh_list, [status_filter, run_picker, list_shown], list_outputs, show_progress="hidden", **private)

    then_refresh(stop_button.click(partial(on_stop, services), run_picker, action_state, **private))
    then_refresh(resume_button.click(partial(on_resume, services), run_picker, action_state, **private))
    then_refresh(delete_button.click(partial(on_delete, services), [run_picker, confirm], confirm, **private))
    clone_button.click(partial(on_clone, services), run_picker,
                       [tabs, *train_form.all_inputs], **private)
    compare_button.click(lambda: gr.update(visible=False), None, compare_plot, **private).then(
        partial(on_compare, services), [compare_picker, compare_metric], [compare_plot, compare_table], **private)
    return status_filter, run_picker, list_outputs, list_shown
