"""UI handlers as plain functions: no server, real Services, readable errors."""

import math
import shlex
import sys
import warnings

import gradio as gr
import pandas as pd
import pytest

from backend.config import TrainConfig, apply_overrides, default_config, template_classes
from backend.data.store import load_split
from backend.errors import UserError
from backend.tasks.text_classification.predictor import load_predictor
from tests.ui.conftest import TINY_LSTM_VALUES, form_values
from ui import data_tab, playground_tab, runs_tab, train_tab
from ui.app import build_app, launch_kwargs, parse_auth

SKIPPED = {"__type__": "update"}


def ingest_toy(services, toy_csv):
    data_tab.on_ingest(services, str(toy_csv), "text-classification", "message", "verdict", None, "toy", 20)
    return services.repo.list_datasets()[0]


def watch_once(services, seen):
    """One look of the page's run watcher (ui.runs_tab.watch_runs): (what it has seen, the notice)."""
    now, ended = runs_tab.runs_ended_since(services, seen)
    return now, runs_tab.notice_of(ended)


def launch(services, dataset_id, name="", **overrides):
    return train_tab.on_launch(services, dataset_id, "text-classification", "lstm", name,
                               *form_values(**{**TINY_LSTM_VALUES, **overrides}))


def test_upload_previews_and_suggests_columns(services, toy_csv):
    preview, text_update, label_update, info = data_tab.on_upload(services, str(toy_csv))
    assert preview["visible"] is True
    assert list(preview["value"].columns) == ["message", "verdict"] and len(preview["value"]) == data_tab.PREVIEW_ROWS
    assert text_update["value"] == "message" and label_update["value"] == "verdict"
    assert "80 rows" in info


def test_ingest_reports_charts_and_lists_the_dataset(services, toy_csv):
    report, charts, classes, lengths, table, picker, train_picker, thumbnails = data_tab.on_ingest(
        services, str(toy_csv), "text-classification", "message", "verdict", None, "feedback", 20)
    assert thumbnails["visible"] is False  # a table has no thumbnails
    assert "Rows:** 80" in report and "happy (40)" in report
    assert charts["visible"] is True
    assert classes["visible"] is True
    assert classes["value"].set_index("class")["rows"].to_dict() == {"happy": 40, "sad": 40}
    assert lengths["value"]["count"].sum() == 64  # the training split: 80% of 80 rows
    assert lengths["sort"] == lengths["value"]["length"].tolist()  # bars in numeric order, not as strings
    assert table["name"].tolist() == ["feedback"]
    dataset_id = services.repo.list_datasets()[0].id
    assert picker["value"] == dataset_id and train_picker["value"] == dataset_id  # ready to train


def test_bad_upload_shows_a_message_not_a_trace(services, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\n" + "\n".join(f"row {i},only" for i in range(10)) + "\n")
    with pytest.warns(UserWarning, match="at least two different labels"):
        report, charts, *rest = data_tab.on_ingest(services, str(one_class), "text-classification", "text", "label",
                                                   None, "", 10)
    assert "ms-error" in report and "at least two different labels" in report and "Traceback" not in report
    *rest, thumbnails = rest
    assert charts["visible"] is False and all(update == SKIPPED for update in rest) and thumbnails["visible"] is False
    assert services.repo.list_datasets() == []
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    with warnings.catch_warnings(record=True) as toasts:  # gr.Warning outside a server is a UserWarning
        warnings.simplefilter("always")
        preview, _, _, info = data_tab.on_upload(services, str(garbage))
    assert not toasts  # the message shows once, under the upload: no toast repeating it
    assert preview["visible"] is False and preview["value"].empty and "ms-error" in info
    preview, _, _, info = data_tab.on_upload(services, None)  # before an upload: no table of placeholder headers
    assert preview["visible"] is False and info == data_tab.UPLOAD_HINT


def test_rename_and_delete_dataset(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    table, picker, _ = data_tab.on_rename(services, dataset.id, "  reviews  ")
    assert table["name"].tolist() == ["reviews"] and picker["value"] == dataset.id
    with pytest.warns(UserWarning, match="confirm"):
        assert data_tab.on_delete(services, dataset.id, False) == (SKIPPED,) * 4
    launch(services, dataset.id)
    with pytest.warns(UserWarning, match="used by run"):
        data_tab.on_delete(services, dataset.id, True)
    assert services.repo.get_dataset(dataset.id).name == "reviews"
    services.runner.delete(services.repo.list_runs()[0].id)
    table, picker, train_picker, confirm = data_tab.on_delete(services, dataset.id, True)
    assert table.empty and picker["choices"] == [] and confirm is False


def test_launch_refuses_invalid_settings_naming_the_field(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    with pytest.warns(UserWarning):
        message = train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "",
                                      *form_values(batch_size=0))
    assert "batch_size: Input should be greater than or equal to 1" in message and "ms-error" in message
    with pytest.warns(UserWarning):
        message = train_tab.on_launch(services, dataset.id, "text-classification", "transformer-scratch", "",
                                      *form_values("transformer-scratch", hidden_size=30, num_heads=4))
    assert "multiple of num_heads" in message
    with pytest.warns(UserWarning):
        message = train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "",
                                      *form_values(hidden_size=2))
    assert "template.hidden_size" in message
    with pytest.warns(UserWarning, match="Pick a dataset"):
        train_tab.on_launch(services, None, "text-classification", "lstm", "", *form_values())
    assert services.repo.list_runs() == []


def test_form_reads_defaults_help_and_ranges_from_the_fields():
    pairs = train_tab.form_fields()
    assert pairs[:4] == [("config", "epochs"), ("config", "batch_size"), ("config", "learning_rate"),
                         ("config", "max_length")]
    assert ("lstm", "bidirectional") in pairs and ("transformer", "base_model") in pairs
    with gr.Blocks():
        batch = train_tab.field_input(TrainConfig, "batch_size")
        pooling = train_tab.field_input(template_classes()["lstm"], "pooling")
        bidirectional = train_tab.field_input(template_classes()["lstm"], "bidirectional")
    assert isinstance(batch, gr.Number) and batch.value == 32 and "(1 to 4,096)" in batch.info
    assert isinstance(pooling, gr.Dropdown) and pooling.value == "mean"  # the field default
    assert isinstance(bidirectional, gr.Checkbox) and bidirectional.value is True


def test_an_optional_setting_left_empty_keeps_the_models_own(services, toy_csv):
    """The transformer's dropout is optional (empty keeps the pretrained model's own). A gr.Number box
    would show and send 0 for it (gradio-app/gradio#6728): every transformer run launched from the form
    trained with dropout 0. It is a text box that starts empty."""
    with gr.Blocks():
        dropout = train_tab.field_input(template_classes()["transformer"], "dropout")
    assert isinstance(dropout, gr.Textbox) and dropout.value == "" and dropout.label == "Dropout (optional)"
    dataset = ingest_toy(services, toy_csv)

    def dropout_of(typed):
        return train_tab.build_config(dataset.id, "text-classification", "transformer", "x",
                                      form_values("transformer", dropout=typed)).template.dropout

    assert dropout_of("") is None and dropout_of("  ") is None and dropout_of("0.2") == 0.2 and dropout_of("0") == 0
    with pytest.warns(UserWarning):
        message = train_tab.on_launch(services, dataset.id, "text-classification", "transformer", "",
                                      *form_values("transformer", dropout="a lot"))
    assert "template.dropout: Input should be a valid number" in message and services.repo.list_runs() == []


def test_the_form_opens_with_the_lstm_training_settings(services):
    """The form opens on the LSTM template, so its epochs, rate and decay are the LSTM's, not TrainConfig's."""
    from ui.app import build_app

    values = {block.label: block.value for block in build_app(services).blocks.values()
              if isinstance(block, gr.Number) and block.label in ("Epochs", "Learning rate", "Weight decay", "Batch size")}
    assert values == {"Epochs": 10, "Learning rate": 2e-3, "Weight decay": 0.1, "Batch size": 32}


def test_form_round_trips_a_config_for_clone(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    config = train_tab.build_config(dataset.id, "text-classification", "lstm", "x", form_values(**TINY_LSTM_VALUES))
    assert config.template.hidden_size == 16 and config.epochs == 3
    assert train_tab.build_config(dataset.id, "text-classification", "lstm", "x",
                                  train_tab.config_values(config)) == config


def test_switching_task_and_template_updates_the_form():
    template, *training = train_tab.on_task_change("text-classification", "lstm")
    assert template["value"] == "lstm" and training == [SKIPPED] * 3  # a fitting template keeps the form's values
    description, *groups = train_tab.on_template_change("transformer")
    assert "pretrained" in description
    assert [g["visible"] for g in groups] == [kind == "transformer" for kind in template_classes()]
    epochs, learning_rate, weight_decay = train_tab.on_template_picked("transformer")
    assert (epochs["value"], learning_rate["value"], weight_decay["value"]) == (3, 5e-5, 0.01)
    epochs, learning_rate, weight_decay = train_tab.on_template_picked("lstm")  # and back: the LSTM's own
    assert (epochs["value"], learning_rate["value"], weight_decay["value"]) == (10, 2e-3, 0.1)


def test_estimate_measures_the_config(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    text = train_tab.on_estimate(services, dataset.id, "text-classification", "lstm", "",
                                 *form_values(**TINY_LSTM_VALUES))
    assert "Parameters:**" in text and "Time per epoch on CPU" in text and "activations" in text


@pytest.mark.e2e
@pytest.mark.slow
def test_train_watch_predict_and_compare(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    assert "position 1" in launch(services, dataset.id, "first")
    first = services.repo.list_runs()[0].id
    assert "position 2" in launch(services, dataset.id, "second", epochs=2)
    second = services.repo.list_runs()[0].id
    table, picker, _, shown = runs_tab.on_refresh_list(services, "all", None)
    assert picker["value"] == second
    seen, notice = watch_once(services, None)
    assert seen == ([first, second], second) and notice == SKIPPED and set(table["status"]) == {"queued"}
    services.runner.start()
    assert services.runner.wait(first, 120).status == "succeeded"
    assert services.runner.wait(second, 120).status == "succeeded"

    table, picker, _, shown = runs_tab.on_refresh_list(services, "all", first, shown)
    assert set(table["status"]) == {"succeeded"} and set(table["progress"]) == {"100%"}
    seen, notice = watch_once(services, seen)  # a toast and the tab title
    assert seen == ([], second) and notice == f"Run #{second} “second” succeeded. Run #{first} “first” succeeded."
    assert picker["value"] == first  # the person's choice is kept
    assert runs_tab.on_refresh_list(services, "all", first, shown) == (SKIPPED, SKIPPED, SKIPPED, shown)
    assert runs_tab.on_refresh_list(services, "failed", first, None)[0].empty

    view = runs_tab.on_refresh_run(services, first)
    (progress, header, losses, quality, details, per_class, confusion, log_tail, error, stop, resume, delete,
     learning_rate, mistakes_box, seen) = view
    assert "data-progress='100.0'" in progress and "#" in header
    assert set(losses["value"]["series"]) == {"train", "validation"}
    assert "macro F1" in set(quality["value"]["series"])
    assert details["visible"] is True and sorted(per_class["class"]) == ["happy", "sad"]
    assert "ms-confusion" in confusion and "run succeeded" in log_tail and error["visible"] is False
    assert stop["interactive"] is False and resume["interactive"] is False and delete["interactive"] is True
    assert set(learning_rate["value"]["series"]) == {"learning rate"} and learning_rate["value"]["value"].gt(0).all()
    assert learning_rate["visible"] is True
    assert mistakes_box["visible"] is True
    wrong = runs_tab.on_misclassified(services, second)
    assert list(wrong.columns) == ["text", "true", "predicted", "confidence"]
    validation = load_split(services.repo.get_dataset(dataset.id), "validation")
    predicted = load_predictor(services.repo.get_run(second).output_dir).predict(validation["text"].tolist())
    expected = {t for t, true, p in zip(validation["text"], validation["label"], predicted) if p["label"] != true}
    assert set(wrong["text"]) == expected and (wrong["true"] != wrong["predicted"]).all()
    assert wrong["confidence"].is_monotonic_decreasing
    unchanged = runs_tab.on_refresh_run(services, first, seen)  # nothing new: nothing is redrawn
    assert unchanged[-1] == seen and all(u == SKIPPED for u in unchanged[:-1])

    scores = playground_tab.on_predict(services, first, "what a good day")
    assert set(scores) == {"happy", "sad"} and sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    examples = playground_tab.on_pick_run(services, first)
    assert 1 <= len(examples["samples"]) <= playground_tab.EXAMPLES
    plot, differences = runs_tab.on_compare(services, [first, second], "eval_macro_f1")
    assert plot["visible"] is True and plot["value"]["series"].nunique() == 2
    assert "epochs" in differences["setting / metric"].tolist()


def test_new_series_get_a_placeholder_so_the_plot_legend_is_complete(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id)
    run_id = services.repo.list_runs()[0].id
    services.repo.add_metrics(run_id, 10, {"train_loss": 0.7})  # no evaluation yet
    losses = runs_tab.on_refresh_run(services, run_id)[2]["value"]
    assert set(losses["series"]) == {"train", "validation"}
    assert math.isnan(losses.loc[losses["series"] == "validation", "value"].iloc[0])
    assert losses["step"].dtype == "int64" and losses["value"].dtype == "float64"


def test_failed_run_shows_its_error(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id)
    run_id = services.repo.list_runs()[0].id
    services.repo.mark_running(run_id, str(services.settings.runs_dir / str(run_id)))
    services.repo.finish(run_id, "failed", error="Out of memory while training. Lower the batch size.")
    error = runs_tab.on_refresh_run(services, run_id)[8]
    assert error["visible"] is True and "Lower the batch size" in error["value"]
    gone = runs_tab.on_refresh_run(services, 999)
    assert "no longer exists" in gone[0]


def test_playground_refuses_unfinished_runs_and_huge_texts(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id)
    run_id = services.repo.list_runs()[0].id
    with pytest.raises(gr.Error, match="only succeeded runs"):
        playground_tab.on_predict(services, run_id, "hello")
    with pytest.raises(gr.Error, match="Pick a finished run"):
        playground_tab.on_predict(services, None, "hello")
    with pytest.raises(gr.Error, match="limit"):
        playground_tab.on_predict(services, run_id, "x" * (playground_tab.MAX_TEXT_CHARS + 1))
    with pytest.warns(UserWarning, match="only succeeded runs"):
        download, summary, _, _ = playground_tab.on_batch(services, run_id, "missing.csv")
    assert download is None and "ms-error" in summary
    # The service every predictor comes through says the same to the CLI and the demo pages.
    with pytest.raises(UserError, match=f"Run #{run_id} is [a-z]+; only succeeded runs can predict"):
        services.load_predictor(run_id)
    with pytest.raises(UserError, match="is not a run id"):
        services.load_predictor("latest")


@pytest.mark.e2e
def test_batch_prediction_scores_a_labelled_file(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id)
    run_id = services.repo.list_runs()[0].id
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"
    csv_path, summary, preview, confusion = playground_tab.on_batch(services, run_id, str(toy_csv))
    predictions = pd.read_csv(csv_path)
    assert len(predictions) == 80 and {"predicted_label", "score_happy", "score_sad"} <= set(predictions.columns)
    assert "accuracy" in summary and "ms-confusion" in confusion and len(preview) == 20
    home = services.settings.home.resolve()
    assert str(csv_path).startswith(str(home / "tmp"))  # in the home dir's temp folder, not beside the DB
    assert not any(str(csv_path).startswith(p) for p in launch_kwargs(services.settings)["blocked_paths"])


def test_stop_resume_and_delete_handlers(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id)
    run_id = services.repo.list_runs()[0].id
    assert runs_tab.on_stop(services, run_id) == "cancelled"  # still queued: cancelled at once
    with pytest.warns(UserWarning, match="only queued or running"):
        assert runs_tab.on_stop(services, run_id) == SKIPPED
    assert runs_tab.on_resume(services, run_id) == "resumed"
    assert services.repo.get_run(run_id).status == "queued"
    with pytest.warns(UserWarning, match="confirm"):
        runs_tab.on_delete(services, run_id, False)
    assert runs_tab.on_delete(services, run_id, True) is False
    assert services.repo.list_runs() == []


def test_clone_fills_the_train_form(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    launch(services, dataset.id, "base")
    run_id = services.repo.list_runs()[0].id
    outputs = runs_tab.on_clone(services, run_id)
    assert len(outputs) == runs_tab.CLONE_OUTPUTS
    tabs_update, dataset_value, task, template, name, *values = outputs
    assert tabs_update["selected"] == "train" and dataset_value == dataset.id and template["value"] == "lstm"
    assert name == "base (clone)"
    rebuilt = train_tab.build_config(dataset_value, task, "lstm", "base", values)
    assert rebuilt == services.repo.get_run(run_id).config
    with pytest.warns(UserWarning, match="Pick a run"):
        assert runs_tab.on_clone(services, None) == (SKIPPED,) * runs_tab.CLONE_OUTPUTS


def test_app_builds_with_a_stable_predict_endpoint(services):
    demo = build_app(services)
    names = [d.get("api_name") for d in demo.config["dependencies"] if d.get("api_visibility", "public") != "private"]
    assert "predict" in names


def test_playground_controls_start_off_and_the_pages_first_refresh_of_the_playground_turns_them_on(services):
    """A click or a Shift+Enter before that refresh has put a run in the picker carries no run and is
    refused (both cores busy: 8 clicks and 9 Shift+Enters in 10), so every control that sends the
    picked run stays off until it is done, whether or not the refresh failed."""
    demo = build_app(services)
    config = demo.config
    components = {c["id"]: c for c in config["components"]}
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
    turn_on = [d for d in config["dependencies"] if ids["predict"] in d["outputs"]]
    assert len(turn_on) == 1 and turn_on[0]["trigger_only_on_success"] is False
    turned_on = turn_on[0]["outputs"]
    assert demo.fns[turn_on[0]["id"]].fn() == [{"interactive": True, "__type__": "update"}] * len(turned_on)
    # Every click or submit that sends the picked run, found from the wiring, not from a list here.
    # The examples list is left out: it is hidden until this same chain fills it.
    senders = {target for d in config["dependencies"] if ids["playground-run"] in d["inputs"]
               for target, event in d["targets"] if event in ("click", "submit")} - {ids["playground-examples"]}
    assert {ids[e] for e in ("predict", "playground-text", "predict-file", "generate", "classify-image",
                             "predict-zip", "table-predict-file")} <= senders
    assert senders <= set(turned_on)
    assert all(components[c]["props"]["interactive"] is False for c in turned_on)
    chain, step = [], turn_on[0]
    while step.get("trigger_after") is not None:   # back along the .then() chain to its trigger
        step = next(d for d in config["dependencies"] if d["id"] == step["trigger_after"])
        chain.append(step)
    assert chain[-1]["targets"][0][1] == "load"
    assert ids["playground-run"] in chain[-1]["outputs"] and ids["playground-examples"] in chain[0]["outputs"]


def test_launch_is_safe_by_default(settings):
    kwargs = launch_kwargs(settings)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["share"] is False and kwargs["auth"] is None
    assert kwargs["show_error"] is False and kwargs["enable_monitoring"] is False
    assert kwargs["run_history"] is False and kwargs["mcp_server"] is False
    blocked = kwargs["blocked_paths"]
    assert str(settings.runs_dir.resolve()) in blocked and str(settings.datasets_dir.resolve()) in blocked
    assert any(p.endswith("modelsmith.db") for p in blocked)
    assert kwargs["allowed_paths"] == [str((settings.home / "tmp").resolve())]
    assert kwargs["max_file_size"] == settings.max_upload_bytes
    assert parse_auth("ann:pw1, bob:pw2") == [("ann", "pw1"), ("bob", "pw2")]
    with pytest.raises(ValueError, match="user:password"):
        parse_auth("justaname")


def test_any_form_change_clears_the_estimate_and_a_launch_error_but_keeps_a_confirmation():
    from ui.formatting import error_box

    assert train_tab.on_form_changed(None) == ("", SKIPPED) and train_tab.on_form_changed("") == ("", SKIPPED)
    # "Run #3 queued" stays true whatever changes next; clearing it raced the click that launched it.
    assert train_tab.on_form_changed("Run **#3** queued.") == ("", SKIPPED)
    assert train_tab.on_form_changed(error_box("Invalid settings — batch_size: too small")) == ("", "")


def test_estimate_says_one_epoch_and_gives_a_range_and_the_load(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    text = train_tab.on_estimate(services, dataset.id, "text-classification", "lstm", "",
                                 *form_values(**{**TINY_LSTM_VALUES, "epochs": 1}))
    assert "Whole run (1 epoch):" in text and "1 epochs" not in text
    assert "(range " in text and "from the fastest and slowest step" in text
    assert "Measured " in text and "its ETA in the Runs tab comes from its own measured steps" in text
    assert train_tab.plural(3, "epoch") == "3 epochs"


def test_a_saved_config_loads_back_into_the_form_and_shows_its_cli_command(services, toy_csv, tmp_path):
    dataset = ingest_toy(services, toy_csv)
    values = form_values(**{**TINY_LSTM_VALUES, "epochs": 2})
    path, command = train_tab.on_save_config(services, dataset.id, "text-classification", "lstm", "my run", *values)
    assert f"python app.py train --dataset {dataset.id} --template lstm" in command and "--set epochs=2" in command
    assert "--set hidden_size=16" in command and "'name=my run'" in command
    loaded = train_tab.on_load_config(services, path)
    assert loaded[0] == dataset.id and loaded[1] == "text-classification"
    assert loaded[2]["value"] == "lstm" and loaded[3] == "my run" and list(loaded[4:-1]) == values
    assert loaded[-1] == "Loaded my-run-config.json."
    # the command launches the same config through the CLI's own parser
    words = shlex.split(command)
    overrides = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--set")
    assert apply_overrides(default_config(dataset.id, "lstm"), overrides) == train_tab.build_config(
        dataset.id, "text-classification", "lstm", "my run", values)


def test_a_file_that_is_no_config_is_refused_with_a_reason(services, tmp_path):
    cases = {"notjson.json": "not json at all", "list.json": "[1, 2]",
             "wrong.json": '{"dataset_id": 1, "epochs": 0, "template": {"kind": "lstm"}}'}
    reasons = {"notjson.json": "is not a JSON file", "list.json": "holds a JSON list",
               "wrong.json": "epochs: Input should be greater than or equal to 1"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.warns(UserWarning, match=reasons[name]):
            outputs = train_tab.on_load_config(services, str(path))
        assert all(o == SKIPPED for o in outputs[:-1]) and "ms-error" in outputs[-1]
        assert reasons[name] in outputs[-1] and "Traceback" not in outputs[-1]


def test_the_train_tab_shows_the_exact_accelerate_launch_command_of_a_worker_run(settings, toy_csv):
    from backend.services import build_services
    from backend.settings import Settings

    process_settings = Settings(home=settings.home, database_url=settings.database_url, launcher="process",
                                device="cpu", cpu_processes_per_run=2, _env_file=None)
    services = build_services(process_settings)
    try:
        dataset = ingest_toy(services, toy_csv)
        _, text = train_tab.on_show_command(services, dataset.id, "text-classification", "lstm", "",
                                            *form_values(**TINY_LSTM_VALUES))
    finally:
        services.close()
    launch = text.split("How the app starts this run's worker:**\n```bash\n")[1].split("\n```")[0]
    words = shlex.split(launch)
    assert words[:3] == [sys.executable, "-m", "accelerate.commands.launch"]  # Accelerate's launcher
    assert words[words.index("--num_processes") + 1] == "2" and "--multi_gpu" in words  # 2 CPU processes: torchrun
    assert words[-4:] == ["-m", "backend.jobs.worker", "--run-id", "<run id>"]
    assert "--main_process_port" in words
