"""The table tasks in the UI, handlers called directly: upload with suggestions, ingest with dropped columns and
the report, the Train form for a tabular template, the Playground form and batch prediction."""

import numpy as np
import pandas as pd
import pytest

from tests.ui.conftest import form_values
from ui import data_tab, playground_tab, runs_tab, tabular_panels, train_tab

CLASSIFY = "tabular-classification"


def _people(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """`buys` is yes when salary > 50 or city is Paris; `customer_id` is an identifier."""
    rng = np.random.default_rng(seed)
    salary = rng.uniform(0, 100, rows).round(1)
    city = rng.choice(["Paris", "Lyon", "Nice"], rows)
    return pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(rows)], "salary": salary, "city": city,
                         "age": rng.integers(18, 80, rows),
                         "buys": np.where((salary > 50) | (city == "Paris"), "yes", "no")})


@pytest.fixture
def people_xlsx(tmp_path):
    path = tmp_path / "people.xlsx"
    _people().to_excel(path, index=False)
    return path


def _ingest(services, path):
    return data_tab.on_ingest(services, str(path), CLASSIFY, None, "buys", None, "people", 20, ["customer_id"])


def test_a_table_upload_is_previewed_with_the_target_and_drops_suggested(services, people_xlsx):
    preview, text, label, info, group, drop, sheet = tabular_panels.on_table_upload(services, str(people_xlsx),
                                                                                   CLASSIFY)
    assert sheet["visible"] is False    # one sheet: nothing to pick
    assert preview["visible"] is True and list(preview["value"].columns)[:2] == ["customer_id", "salary"]
    assert text["visible"] is False and label["value"] == "buys" and label["label"] == "Target column"
    assert group["visible"] is True and drop["value"] == ["customer_id"]
    assert "buys" not in drop["choices"] and "salary" in drop["choices"]   # the target is no column to leave out
    # Another target picked: it leaves the choices (and the ticks), the old target comes back as a choice.
    drop = tabular_panels.on_target_picked(CLASSIFY, "customer_id", ["customer_id", "city"], preview["value"])
    assert drop["value"] == ["city"] and "customer_id" not in drop["choices"] and "buys" in drop["choices"]
    assert tabular_panels.on_target_picked("text-classification", "buys", [], preview["value"]) == {
        "__type__": "update"}   # gr.skip(): a text task has no columns to leave out
    assert "240 rows" in info and "`salary` numeric" in info and "`city` categorical" in info
    # Back to a text task: the text pickers return, the table options go.
    _, text, label, _, group, drop, _ = tabular_panels.on_table_upload(services, str(people_xlsx),
                                                                       "text-classification")
    assert text["visible"] is True and label["label"] == "Label column" and group["visible"] is False


def test_a_workbook_sheet_and_changed_kinds_are_used(services, tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["read me first"]}).to_excel(writer, sheet_name="Cover", index=False)
        _people().to_excel(writer, sheet_name="Customers", index=False)
    *_, info, _, _, sheet = tabular_panels.on_table_upload(services, str(path), CLASSIFY)
    assert sheet["visible"] is True and sheet["choices"] == ["Cover", "Customers"] and sheet["value"] == "Cover"
    preview, *_, sheet = tabular_panels.on_table_upload(services, str(path), CLASSIFY, "Customers")
    assert "buys" in preview["value"].columns and sheet["value"] == "Customers"
    report, *_ = data_tab.on_ingest(services, str(path), CLASSIFY, None, "buys", None, "book", 20, ["customer_id"],
                                    "age=categorical", "Customers")
    assert "| age | categorical | input |" in report
    with pytest.warns(UserWarning, match="write column=kind"):
        report, *_ = data_tab.on_ingest(services, str(path), CLASSIFY, None, "buys", None, "book", 20, [], "age",
                                        "Customers")
    assert "ms-error" in report


def test_a_broken_table_gets_a_message(services, tmp_path):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a workbook")
    outputs = tabular_panels.on_table_upload(services, str(broken), CLASSIFY)   # the message sits under the file
    assert "ms-error" in outputs[3] and "xlsx" in outputs[3]


def test_ingest_shows_the_table_report(services, people_xlsx):
    report, charts, classes, lengths, table, picker, train_picker, thumbnails = _ingest(services, people_xlsx)
    assert "Target:** `buys`" in report and "customer_id" in report.split("Left out:**")[1]
    assert "| salary | numeric | input |" in report and "Class balance:** " in report
    assert classes["visible"] is True and lengths["visible"] is False and thumbnails["visible"] is False
    dataset = services.list_datasets()[0]
    assert dataset.input_columns == ["salary", "city", "age"] and picker["value"] == dataset.id


@pytest.mark.slow
def test_a_tabular_run_from_the_train_form_and_the_playground_form(services, people_xlsx, tmp_path):
    _ingest(services, people_xlsx)
    dataset = services.list_datasets()[0]
    assert train_tab.on_dataset_picked(services, dataset.id) == CLASSIFY
    templates, *_ = train_tab.on_task_change(CLASSIFY, "lstm")
    assert templates["value"] == "gbdt" and [k for _, k in templates["choices"]] == ["gbdt", "mlp", "ft-transformer"]
    values = form_values("gbdt", learning_rate=0.1, num_rounds=40, min_rows_per_leaf=5)
    check_the_estimates(services, dataset.id)
    message = train_tab.on_launch(services, dataset.id, CLASSIFY, "gbdt", "people gbdt", *values)
    assert "queued" in message
    run_id = services.list_runs()[0].id
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"

    header = runs_tab.on_refresh_run(services, run_id)[1]
    assert "learning rate 0.1" in header and "num_rounds=40" in header
    assert "epoch" not in header and "batch" not in header   # settings gbdt never reads are not shown
    scores, pr_curve, fit = tabular_panels.on_show_scores(services, run_id)     # the Runs tab's final scores
    assert scores["visible"] and "ROC-AUC" in scores["value"] and "macro precision" in scores["value"]
    assert pr_curve["visible"] and fit["visible"] is False
    assert pr_curve["value"]["recall"].between(0, 1).all() and len(pr_curve["value"]) > 2
    importance = tabular_panels.on_show_importance(services, run_id)     # the Runs tab's chart
    assert importance["visible"] is True and set(importance["value"]["column"]) == {"salary", "city", "age"}
    assert importance["value"]["importance"].iloc[0] > 0.05 and importance["value"]["column"].iloc[0] == "salary"
    assert tabular_panels.on_show_importance(services, None)["visible"] is False

    classify, generate, *_ = playground_tab.on_show_panel(services, run_id)
    assert classify["visible"] is False and generate["visible"] is False
    panel, _, _ = tabular_panels.on_show_table_panel(services, run_id)
    assert panel["visible"] is True
    assert playground_tab.on_pick_run(services, run_id)["visible"] is False  # no example texts for a table

    fields = services.table_form(run_id)
    assert [f["column"] for f in fields] == ["salary", "city", "age"]
    assert fields[0]["minimum"] >= 0 and fields[0]["maximum"] <= 100 and set(fields[1]["choices"]) == {
        "Paris", "Lyon", "Nice"}
    columns, kinds = [f["column"] for f in fields], [f["kind"] for f in fields]
    probabilities, number = tabular_panels.on_table_predict(services, run_id, columns, kinds, 90.0, "Lyon", 30)
    assert max(probabilities, key=probabilities.get) == "yes" and number == ""
    probabilities, _ = tabular_panels.on_table_predict(services, run_id, columns, kinds, 10.0, "Lyon", 40)
    assert max(probabilities, key=probabilities.get) == "no"
    # Blank boxes and a city never seen: still an answer.
    probabilities, _ = tabular_panels.on_table_predict(services, run_id, columns, kinds, float("nan"), "Tokyo", None)
    assert set(probabilities) == {"no", "yes"} and sum(probabilities.values()) == pytest.approx(1)

    rows = tmp_path / "new_people.csv"
    _people(60, seed=1).to_csv(rows, index=False)
    folder = playground_tab.fresh_download_folder
    path, summary, preview, confusion = tabular_panels.on_table_batch(services, folder, run_id, str(rows))
    assert "Predicted **60** rows" in summary and "accuracy" in summary and "<table" in confusion
    assert {"predicted_buys", "probability_yes"} <= set(pd.read_csv(path).columns)


def check_the_estimates(services, dataset_id):
    """gbdt: boosting rounds timed on the real rows, scaled to num_rounds; mlp: optimizer steps, scaled to epochs."""
    import re

    text = train_tab.on_estimate(services, dataset_id, CLASSIFY, "gbdt", "",
                                 *form_values("gbdt", learning_rate=0.1, num_rounds=40, min_rows_per_leaf=5))
    assert "#### Estimate (from 11 measured boosting rounds)" in text, text
    assert "Time per boosting round on CPU:** about" in text and "Whole run (40 boosting rounds):** about" in text
    assert "Parameters" not in text and "LightGBM's one-byte bins" in text and "early stopping may end it" in text
    per_round = float(re.search(r"boosting round on CPU:\*\* about ([0-9.]+) ms", text)[1])
    assert 0 < per_round < 1000  # a round on 192 rows: milliseconds
    text = train_tab.on_estimate(services, dataset_id, CLASSIFY, "mlp", "",
                                 *form_values("mlp", epochs=4, batch_size=32, hidden_size=16, num_layers=1))
    assert "#### Estimate (from 5 measured training steps)" in text, text
    assert "Parameters:**" in text and "Time per epoch on CPU" in text and "6 steps ×" in text  # 192 rows / 32
    assert "Whole run (4 epochs)" in text and "ms-error" not in text


def test_the_playground_form_refuses_a_missing_run(services):
    import gradio as gr

    with pytest.raises(gr.Error, match="Pick a finished run"):
        tabular_panels.on_table_predict(services, None, ["x"], ["numeric"], 1.0)
    with pytest.warns(UserWarning, match="Upload a CSV"):
        path, summary, *_ = tabular_panels.on_table_batch(services, playground_tab.fresh_download_folder, 1, None)
    assert path is None and "ms-error" in summary


def test_a_regressor_answers_the_form_with_a_number(services, tmp_path):
    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions

    rng = np.random.default_rng(2)
    size = rng.uniform(20, 200, 200).round()
    table = pd.DataFrame({"size": size, "district": rng.choice(["north", "south"], 200),
                          "price": 3 * size + rng.normal(scale=5, size=200)})
    path = tmp_path / "flats.csv"
    table.to_csv(path, index=False)
    dataset = services.ingest(path, IngestOptions(task="tabular-regression", validation_fraction=0.2)).dataset
    assert dataset.target_column == "price"
    config = apply_overrides(default_config(dataset.id, "gbdt", dataset.task),
                             {"num_rounds": "60", "min_rows_per_leaf": "5"})
    run_id = services.runner.submit(config)
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"
    label, number = tabular_panels.on_table_predict(services, run_id, ["size", "district"], ["numeric", "categorical"],
                                                    150.0, "north")
    assert label is None and "Predicted value" in number
    value = float(number.split("**")[1])
    assert 380 < value < 520   # about 3 x 150
    path, summary, *_ = tabular_panels.on_table_batch(services, playground_tab.fresh_download_folder, run_id,
                                                      str(tmp_path / "flats.csv"))
    assert "RMSE" in summary and "R²" in summary and "predicted_price" in pd.read_csv(path).columns


def test_the_train_tab_shows_a_table_template_only_the_settings_it_reads():
    fields = train_tab.switched_fields()
    loop_settings = {"warmup_ratio", "gradient_accumulation_steps", "max_grad_norm", "eval_every_steps",
                     "torch_compile"}
    boosting_ignores = {"epochs", "batch_size", "weight_decay", "early_stopping_patience", *loop_settings}
    assert {"max_length", "max_steps", "eval_batches", *boosting_ignores} == set(fields)
    for task in (CLASSIFY, "tabular-regression"):
        gbdt = dict(zip(fields, (u["visible"] for u in train_tab.on_task_fields(task, "gbdt"))))
        assert not any(gbdt.values()), gbdt  # boosting rounds: no epoch-loop setting applies
        for network in ("mlp", "ft-transformer"):  # on the shared core: every loop setting is read
            shown = dict(zip(fields, (u["visible"] for u in train_tab.on_task_fields(task, network))))
            assert {name for name, visible in shown.items() if visible} == boosting_ignores, (network, shown)
    shown = dict(zip(fields, (u["visible"] for u in train_tab.on_task_fields("text-classification", "lstm"))))
    assert shown["warmup_ratio"] and shown["epochs"] and shown["max_length"] and not shown["max_steps"]
    # Every setting gbdt's fit reads stays on the form.
    from backend.config import TrainConfig

    read = {"learning_rate", "time_budget_seconds", "log_every_steps", "seed"}
    assert read <= set(TrainConfig.model_fields) and not read & set(fields)


@pytest.mark.slow
def test_a_date_column_gets_a_checked_date_box_and_a_bad_date_a_message(services):
    import gradio as gr

    date_input = tabular_panels.form_input({"column": "when", "kind": "datetime"})
    assert isinstance(date_input, gr.Textbox) and "2024-01-31 14:00" in date_input.placeholder
    assert "date, e.g." in date_input.info
    assert tabular_panels.form_value("2024-03-01 10:00", "datetime", "when") == "2024-03-01 10:00"
    assert tabular_panels.form_value("  ", "datetime", "when") is None          # blank = unknown
    assert tabular_panels.form_value(1_709_287_200.0, "datetime", "when").startswith("2024-03-01")  # a timestamp
    with pytest.raises(gr.Error, match=r"'31/31/2024' in `when` is not a date: write it like 2024-01-31"):
        tabular_panels.on_table_predict(services, 7, ["when"], ["datetime"], "31/31/2024")


def test_a_number_box_starts_blank_and_hints_its_training_range_in_plain_numbers():
    import gradio as gr

    box = tabular_panels.form_input({"column": "fnlwgt", "kind": "numeric", "minimum": 12285.0, "maximum": 1484705.0})
    # A text box: gr.Number would show and send 0 for "blank = missing".
    assert isinstance(box, gr.Textbox) and not box.value
    assert box.info == "seen in training: 12285 to 1484705; blank = missing"


def test_a_number_box_reads_numbers_blanks_and_refuses_words():
    from backend.errors import UserError

    assert tabular_panels.form_value("42", "numeric", "age") == 42.0
    assert tabular_panels.form_value(" 1 484 705 ", "numeric", "fnlwgt") == 1484705.0
    assert tabular_panels.form_value("-3.5", "numeric", "x") == -3.5 and tabular_panels.form_value(7, "numeric") == 7.0
    assert tabular_panels.form_value("  ", "numeric", "age") is None and tabular_panels.form_value(None, "numeric") is None
    for typed in ("forty", "3,5", "nan", "inf"):
        with pytest.raises(UserError, match=rf"'{typed}' in `age` is not a number: write it like 42 or 3.5"):
            tabular_panels.form_value(typed, "numeric", "age")


@pytest.mark.slow
def test_a_regression_run_shows_r2_and_predicted_against_actual(services, tmp_path):
    """A table regression's Runs tab view: RMSE, MAE and R², and a predicted-vs-actual point per validation row."""
    rows = _people(300)
    rows["spend"] = rows["salary"] * 3 + rows["age"]
    path = tmp_path / "spend.csv"
    rows.drop(columns="buys").to_csv(path, index=False)
    data_tab.on_ingest(services, str(path), "tabular-regression", None, "spend", None, "spend", 20, ["customer_id"])
    dataset = services.list_datasets()[0]
    message = train_tab.on_launch(services, dataset.id, "tabular-regression", "gbdt", "spend gbdt",
                                  *form_values("gbdt", learning_rate=0.1, num_rounds=60, min_rows_per_leaf=5))
    assert "queued" in message
    run_id = services.list_runs()[0].id
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"
    scores, pr_curve, fit = tabular_panels.on_show_scores(services, run_id)
    assert scores["visible"] and "RMSE" in scores["value"] and "R²" in scores["value"]
    assert fit["visible"] and pr_curve["visible"] is False
    points = fit["value"]
    assert len(points) == dataset.validation_rows and np.corrcoef(points["actual"], points["predicted"])[0, 1] > 0.9
