"""UI handlers as plain functions: no server, real Services, readable errors."""

import gradio as gr
import pandas as pd
import pytest

from backend.config import TrainConfig
from tests.ui.conftest import TINY_LSTM_VALUES
from ui import data_tab, playground_tab, runs_tab, train_tab
from ui.app import launch_kwargs, parse_auth


def form_values(kind="lstm", **overrides):
    """Form values in form order, defaults from the config classes, with overrides by field name."""
    from backend.config import TEMPLATE_CLASSES

    values = []
    for owner, name in train_tab.form_fields():
        model = TrainConfig if owner == "config" else TEMPLATE_CLASSES[owner]
        value = model.model_fields[name].default
        if owner in ("config", kind) and name in overrides:
            value = overrides[name]
        values.append(value)
    return values


def ingest_toy(services, toy_csv):
    data_tab.on_ingest(services, str(toy_csv), "text-classification", "message", "verdict", None, "toy", 20)
    return services.repo.list_datasets()[0]


def test_upload_previews_and_suggests_columns(services, toy_csv):
    preview, text_update, label_update, info = data_tab.on_upload(services, str(toy_csv))
    assert list(preview.columns) == ["message", "verdict"] and len(preview) == data_tab.PREVIEW_ROWS
    assert text_update["value"] == "message" and label_update["value"] == "verdict"
    assert "80 rows" in info


def test_ingest_reports_and_lists_the_dataset(services, toy_csv):
    report, classes, lengths, table, *_ = data_tab.on_ingest(
        services, str(toy_csv), "text-classification", "message", "verdict", None, "feedback", 20)
    assert "Rows:** 80" in report and "happy (40)" in report
    assert classes.set_index("class")["rows"].to_dict() == {"happy": 40, "sad": 40}
    assert lengths["count"].sum() == 64  # the training split: 80% of 80 rows
    assert table["name"].tolist() == ["feedback"]


def test_bad_upload_shows_a_message_not_a_trace(services, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\n" + "\n".join(f"row {i},only" for i in range(10)) + "\n")
    with pytest.raises(gr.Error) as error:
        data_tab.on_ingest(services, str(one_class), "text-classification", "text", "label", None, "", 10)
    assert "class" in error.value.message and "Traceback" not in error.value.message
    assert services.repo.list_datasets() == []
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(gr.Error):
        data_tab.on_upload(services, str(garbage))


def test_delete_dataset_needs_confirmation_and_refuses_when_used(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    with pytest.raises(gr.Error, match="confirm"):
        data_tab.on_delete(services, dataset.id, False)
    train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "r", *form_values(**TINY_LSTM_VALUES))
    with pytest.raises(gr.Error, match="used by run"):
        data_tab.on_delete(services, dataset.id, True)
    assert services.repo.get_dataset(dataset.id).name == "toy"


def test_launch_refuses_invalid_settings_naming_the_field(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    with pytest.raises(gr.Error) as error:
        train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "", *form_values(batch_size=0))
    assert "batch_size" in error.value.message
    with pytest.raises(gr.Error) as error:
        train_tab.on_launch(services, dataset.id, "text-classification", "transformer-scratch", "",
                            *form_values("transformer-scratch", hidden_size=30, num_heads=4))
    assert "multiple of num_heads" in error.value.message
    with pytest.raises(gr.Error, match="Pick a dataset"):
        train_tab.on_launch(services, None, "text-classification", "lstm", "", *form_values())
    assert services.repo.list_runs() == []


def test_form_round_trips_a_config_for_clone(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    config = train_tab.build_config(dataset.id, "text-classification", "lstm", "x", form_values(**TINY_LSTM_VALUES))
    assert config.template.hidden_size == 16 and config.epochs == 3
    assert train_tab.build_config(dataset.id, "text-classification", "lstm", "x",
                                  train_tab.config_values(config)) == config


def test_train_watch_predict_and_compare(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    message = train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "first",
                                  *form_values(**TINY_LSTM_VALUES))
    assert "queued" in message
    first = services.repo.list_runs()[0].id
    second_message = train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "second",
                                         *form_values(**{**TINY_LSTM_VALUES, "epochs": 2}))
    assert "position 2" in second_message
    services.runner.start()
    second = services.repo.list_runs()[0].id
    assert services.runner.wait(first, 120).status == "succeeded"
    assert services.runner.wait(second, 120).status == "succeeded"

    table, picker, _ = runs_tab.on_refresh_list(services, "all", None)
    assert set(table["status"]) == {"succeeded"} and set(table["progress"]) == {"100%"}
    progress, header, losses, quality, per_class, confusion, log_tail, error, shown = runs_tab.on_refresh_run(
        services, first)
    assert "data-progress='100.0'" in progress and "#" in header
    assert set(losses["series"]) == {"train", "validation"}
    assert "macro F1" in set(quality["series"])
    assert sorted(per_class["class"]) == ["happy", "sad"]
    assert confusion.shape == (2, 3)
    assert "run succeeded" in log_tail
    unchanged = runs_tab.on_refresh_run(services, first, shown)  # nothing new: nothing is redrawn
    assert unchanged[-1] == shown and all(isinstance(u, dict) and u.get("__type__") == "update" and len(u) == 1
                                          for u in unchanged[:-1])

    scores = playground_tab.on_predict(services, first, "what a good day")
    assert set(scores) == {"happy", "sad"} and sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    curves, differences = runs_tab.on_compare(services, [first, second], "eval_macro_f1")
    assert curves["series"].nunique() == 2
    assert "epochs" in differences["setting / metric"].tolist()


def test_playground_refuses_unfinished_runs_and_huge_texts(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "", *form_values(**TINY_LSTM_VALUES))
    run_id = services.repo.list_runs()[0].id
    with pytest.raises(gr.Error, match="only succeeded runs"):
        playground_tab.on_predict(services, run_id, "hello")
    with pytest.raises(gr.Error, match="Pick a finished run"):
        playground_tab.on_predict(services, None, "hello")
    with pytest.raises(gr.Error, match="limit"):
        playground_tab.on_predict(services, run_id, "x" * (playground_tab.MAX_TEXT_CHARS + 1))


def test_batch_prediction_scores_a_labelled_file(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "", *form_values(**TINY_LSTM_VALUES))
    run_id = services.repo.list_runs()[0].id
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"
    csv_path, summary, preview, confusion = playground_tab.on_batch(services, run_id, str(toy_csv))
    predictions = pd.read_csv(csv_path)
    assert len(predictions) == 80 and {"predicted_label", "score_happy", "score_sad"} <= set(predictions.columns)
    assert "accuracy" in summary and confusion.shape == (2, 3)
    assert not str(csv_path).startswith(str(services.settings.home.resolve()))


def test_stop_resume_and_delete_handlers(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "", *form_values(**TINY_LSTM_VALUES))
    run_id = services.repo.list_runs()[0].id
    assert runs_tab.on_stop(services, run_id) == "cancelled"  # still queued: cancelled at once
    with pytest.raises(gr.Error, match="only queued or running"):
        runs_tab.on_stop(services, run_id)
    assert runs_tab.on_resume(services, run_id) == "resumed"
    assert services.repo.get_run(run_id).status == "queued"
    with pytest.raises(gr.Error, match="confirm"):
        runs_tab.on_delete(services, run_id, False)
    runs_tab.on_delete(services, run_id, True)
    assert services.repo.list_runs() == []


def test_clone_fills_the_train_form(services, toy_csv):
    dataset = ingest_toy(services, toy_csv)
    train_tab.on_launch(services, dataset.id, "text-classification", "lstm", "base",
                        *form_values(**TINY_LSTM_VALUES))
    run_id = services.repo.list_runs()[0].id
    tabs_update, dataset_value, task, template, name, *values = runs_tab.on_clone(services, run_id)
    assert tabs_update["selected"] == "train" and dataset_value == dataset.id and template["value"] == "lstm"
    assert name == "base (clone)"
    rebuilt = train_tab.build_config(dataset_value, task, "lstm", "base", values)
    assert rebuilt == services.repo.get_run(run_id).config


def test_launch_is_safe_by_default(settings):
    kwargs = launch_kwargs(settings)
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["share"] is False and kwargs["auth"] is None
    assert kwargs["show_error"] is False and kwargs["enable_monitoring"] is False
    assert kwargs["allowed_paths"] == [] and str(settings.home.resolve()) in kwargs["blocked_paths"]
    assert kwargs["max_file_size"] == settings.max_upload_bytes
    assert parse_auth("ann:pw1, bob:pw2") == [("ann", "pw1"), ("bob", "pw2")]
    with pytest.raises(ValueError, match="user:password"):
        parse_auth("justaname")
