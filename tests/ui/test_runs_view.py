"""Runs tab: lone evaluation points, best-so-far, which run a fresh page follows, imported runs."""

import re

from tests.ui.test_handlers import SKIPPED, ingest_toy, launch, watch_once
from ui import runs_tab
from ui.formatting import LOSS_KEYS, curves
from ui.plots import CurvePlot, curve_plot, has_lone_point, step_range


def _metric(key, step, value):
    from storage.records import MetricRecord

    return MetricRecord(run_id=1, key=key, step=step, value=value)


def test_a_single_evaluation_is_drawn_as_a_point_with_integer_steps():
    plot = curve_plot(title="Loss")
    assert isinstance(plot, CurvePlot) and plot.x_axis_format == "d"  # step 157 reads "157", not "157.000000"
    one_eval = curves([_metric("train_loss", s, 1.0 / s) for s in (50, 100, 157)] + [_metric("eval_loss", 157, 0.4)],
                      LOSS_KEYS, every_series=True)
    assert has_lone_point(one_eval) and plot.postprocess(one_eval).mark == "point"
    two_evals = curves([_metric("eval_loss", 100, 0.5), _metric("eval_loss", 157, 0.4),
                        _metric("train_loss", 100, 0.6), _metric("train_loss", 157, 0.5)], LOSS_KEYS)
    assert not has_lone_point(two_evals) and plot.postprocess(two_evals).mark == "line"
    # The placeholder NaN of a series without values is not a point to draw.
    no_eval = curves([_metric("train_loss", 10, 0.7), _metric("train_loss", 20, 0.6)], LOSS_KEYS, every_series=True)
    assert not has_lone_point(no_eval) and plot.postprocess(no_eval).mark == "line"
    # The x-axis starts at 0 and is at least 10 steps wide, so its ticks are whole steps.
    assert step_range(one_eval) == [0, 164] and step_range(curves([], LOSS_KEYS)) == [0, 10]
    # Gradio rebuilds a component from its constructor on a property update: the class must survive it.
    rebuilt = CurvePlot(**{**plot.constructor_args, "render": False})
    assert rebuilt.postprocess(one_eval).mark == "point"


def test_best_column_shows_the_best_evaluation_while_a_run_trains(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "live")
    run_id = services.repo.list_runs()[0].id
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    for step, score in ((10, 0.71), (20, 0.956), (30, 0.90)):
        services.repo.add_metrics(run_id, step, {"eval_macro_f1": score, "train_loss": 0.5})
    table = runs_tab.on_refresh_list(services, "all", run_id)[0]
    assert table.loc[table["id"] == run_id, "best"].item() == "macro F1 0.956 so far"
    services.repo.finish(run_id, "succeeded", metrics={"macro_f1": 0.956, "accuracy": 0.95})
    table = runs_tab.on_refresh_list(services, "all", run_id)[0]
    assert table.loc[table["id"] == run_id, "best"].item() == "macro F1 0.956"


def test_a_finished_run_draws_only_the_series_it_logged(services, toy_csv):
    """While a run trains, every series keeps a place in the legend (its colour is fixed by the first
    frame); once it is over, a series it never logged (gbdt: training loss, macro F1) is left out."""
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "rounds")
    run_id = services.repo.list_runs()[0].id
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    for step in (1, 2, 3):
        services.repo.add_metrics(run_id, step, {"eval_loss": 0.5 / step, "eval_accuracy": 0.8})
    view = runs_tab.on_refresh_run(services, run_id)
    assert set(view[2]["value"]["series"]) == {"train", "validation"}
    assert set(view[3]["value"]["series"]) >= {"accuracy", "macro F1"}
    services.repo.finish(run_id, "succeeded", metrics={"accuracy": 0.8})
    view = runs_tab.on_refresh_run(services, run_id)
    assert set(view[2]["value"]["series"]) == {"validation"} and set(view[3]["value"]["series"]) == {"accuracy"}


def test_a_run_without_a_loss_curve_gets_its_x_axis_from_the_curves_it_has(services, toy_csv):
    """A gbdt regression logs only RMSE and MAE per round: the x-axis spans its rounds (it was cut at
    step 10), and, once it is over, no empty loss plot is shown."""
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "rounds")
    run_id = services.repo.list_runs()[0].id
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    for step in range(1, 62):
        services.repo.add_metrics(run_id, step, {"eval_accuracy": 0.8})
    services.repo.finish(run_id, "succeeded", metrics={"accuracy": 0.8})
    view = runs_tab.on_refresh_run(services, run_id)
    losses, quality = view[2], view[3]
    assert quality["x_lim"][1] >= 61 and losses["visible"] is False and quality["visible"] is True


def test_a_reloaded_page_follows_the_running_run_not_the_newest_queued_one(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "training")
    running = services.repo.list_runs()[0].id
    launch(services, dataset.id, "waiting")
    queued = services.repo.list_runs()[0].id
    services.repo.mark_running(running, str(services.settings.runs_dir / str(running)))
    _, picker, _, shown = runs_tab.on_refresh_list(services, "all", queued, None)  # a fresh page
    assert picker["value"] == running
    launch(services, dataset.id, "just launched")  # a run launched from this page is followed
    newest = services.repo.list_runs()[0].id
    assert runs_tab.on_refresh_list(services, "all", running, shown)[1]["value"] == newest


def test_a_finished_run_notifies_once(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "quick")
    run_id = services.repo.list_runs()[0].id
    seen, notice = watch_once(services, None)  # a page opened now
    assert seen == ([run_id], run_id) and notice == SKIPPED
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    seen, notice = watch_once(services, seen)
    assert seen == ([run_id], run_id) and notice == SKIPPED
    services.repo.finish(run_id, "failed", error="boom")
    seen, notice = watch_once(services, seen)
    assert seen == ([], run_id) and notice == f"Run #{run_id} “quick” failed."
    assert watch_once(services, seen) == (([], run_id), SKIPPED)  # already told
    # a short run that starts and ends between two looks is news too
    launch(services, dataset.id, "blink")
    blink = services.repo.list_runs()[0].id
    services.repo.mark_running(blink, str(services.settings.runs_dir / str(blink)))
    services.repo.finish(blink, "succeeded", metrics={"macro_f1": 1.0})
    assert watch_once(services, seen)[1] == f"Run #{blink} “blink” succeeded."


def test_an_imported_run_says_where_it_came_from_and_shows_the_zip_metrics(services, toy_csv):
    from backend.config import default_config

    config = default_config(1, "lstm")
    run = services.repo.add_imported_run(name="spam v2", task="text-classification", template="lstm",
                                         config_json=config.model_dump_json(),
                                         metrics={"accuracy": 0.97, "macro_f1": 0.941},
                                         place=lambda run_id: str(services.settings.runs_dir / str(run_id)),
                                         imported_from="spam-run3.zip")
    view = runs_tab.on_refresh_run(services, run.id)
    header, losses, quality, learning_rate = view[1], view[2], view[3], view[12]
    assert "#None" not in header and "imported from spam-run3.zip" in header
    assert "| accuracy | 0.97 |" in header and "| macro f1 | 0.941 |" in header
    assert losses["visible"] is False and quality["visible"] is False and learning_rate["visible"] is False
    table = runs_tab.on_refresh_list(services, "all", run.id)[0]
    row = table.loc[table["id"] == run.id].iloc[0]
    assert row["dataset"] == "imported from spam-run3.zip" and row["duration"] == "" and row["best"] == "macro F1 0.941"


def test_a_finished_run_shows_where_its_time_went(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "timed")
    run_id = services.repo.list_runs()[0].id
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    header = runs_tab.on_refresh_run(services, run_id)[1]
    assert "Where the time went" not in header  # nothing measured yet
    assert re.search(r"· \d+ epochs? · batch \d+ · learning rate [\d.e-]+ · max length \d+", header), header
    timing = {"setup": 2.0, "steps": 6.0, "evaluation": 1.5, "checkpoints": 0.5, "saving": 0.0, "finishing": 0.0,
              "total": 10.0}
    services.repo.finish(run_id, "succeeded", metrics={"macro_f1": 0.9, "timing_seconds": timing})
    header = runs_tab.on_refresh_run(services, run_id)[1]
    assert ("**Where the time went:** setup 2.0 s (20%) · steps 6.0 s (60%) · evaluation 1.5 s (15%) · "
            "checkpoints 0.5 s (5%)") in header


def test_the_page_watcher_yields_a_notice_once_when_a_run_ends(services, toy_csv, monkeypatch):
    import asyncio

    import gradio as gr

    toasts = []
    for kind in ("Info", "Success", "Warning"):
        monkeypatch.setattr(gr, kind, lambda message, *_, kind=kind, **options: toasts.append(
            (kind, message, options.get("duration", 10))))
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "watched")
    run_id = services.repo.list_runs()[0].id
    launch(services, dataset.id, "broken")
    broken = services.repo.list_runs()[0].id

    async def watch():
        toasts.clear()  # "Dataset stored.", "Run #2 queued." (info toasts of the steps above)
        watcher = runs_tab.watch_runs(services, every_seconds=0)
        yielded = [await anext(watcher)]  # the page just opened: nothing is news
        for ended, status in ((run_id, "succeeded"), (broken, "failed")):
            services.repo.mark_running(ended, str(services.settings.runs_dir / str(ended)))
            services.repo.finish(ended, status, metrics={"macro_f1": 1.0} if status == "succeeded" else None,
                                 error=None if status == "succeeded" else "boom")
        yielded += [await anext(watcher), await anext(watcher)]
        await watcher.aclose()
        return yielded

    opened, ended, later = asyncio.run(watch())
    assert opened == SKIPPED and later == SKIPPED  # told once
    assert ended == f"Run #{broken} “broken” failed. Run #{run_id} “watched” succeeded."
    # Each run its own toast, never in Gradio's info group (where the 10 s "queued" toast closed it),
    # and kept until closed.
    assert sorted(toasts) == [("Success", f"Run #{run_id} “watched” succeeded.", None),
                              ("Warning", f"Run #{broken} “broken” failed.", None)]
