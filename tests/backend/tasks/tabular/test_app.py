"""Tables in the app, end to end: registered tasks, ingest through Services (typed Parquet + report), every
template trained through the job runner, stop, reload equal to the in-memory model, and the CLI path."""

import json

import numpy as np
import pandas as pd
import pytest

import app
from backend.config import TrainConfig, apply_overrides, default_config
from backend.data.store import IngestOptions, load_split
from backend.errors import UserError
from backend.tasks.registry import TASKS, get_task

CLASSIFY, REGRESS = "tabular-classification", "tabular-regression"
# Tiny runs: a few epochs / rounds on a few hundred rows.
TINY = {"gbdt": {"template.num_rounds": "40", "template.min_rows_per_leaf": "5"},
        "mlp": {"epochs": "4", "batch_size": "64", "learning_rate": "0.003", "template.hidden_size": "32",
                "template.num_layers": "1"},
        "ft-transformer": {"epochs": "3", "batch_size": "64", "learning_rate": "0.003", "template.token_size": "16",
                           "template.num_heads": "2", "template.num_layers": "1"}}


@pytest.fixture
def services(settings):
    from backend.services import build_services

    services = build_services(settings)
    yield services
    services.close()


@pytest.fixture
def cancer_csv(tmp_path, breast_cancer):
    path = tmp_path / "cancer.csv"
    breast_cancer.to_csv(path, index=False)
    return path


@pytest.fixture
def diabetes_csv(tmp_path, diabetes):
    path = tmp_path / "diabetes.csv"
    diabetes.head(300).to_csv(path, index=False)
    return path


def _ingest(services, path, task=CLASSIFY, **options):
    return services.ingest(path, IngestOptions(task=task, validation_fraction=0.2, **options)).dataset


def _train(services, dataset, kind, **extra):
    config = apply_overrides(default_config(dataset.id, kind, dataset.task), {**TINY[kind], **extra})
    run_id = services.runner.submit(config)
    services.runner.start()
    return services.runner.wait(run_id, 300)


def test_both_tabular_tasks_are_registered_with_the_three_templates():
    for name in (CLASSIFY, REGRESS):
        task = get_task(name)
        assert task.reads_rows and task.panel == "table" and task.needs_label_column
        assert set(task.template_kinds) == {"gbdt", "mlp", "ft-transformer"}
        config = default_config(1, "ft-transformer", name)
        assert config.learning_rate == 1e-4 and config.batch_size == 256   # the task's training defaults
        assert TrainConfig.model_validate_json(config.model_dump_json()) == config
    assert TASKS[REGRESS].best_metric == "rmse" and not TASKS[REGRESS].higher_is_better
    with pytest.raises(ValueError, match="does not do"):
        TrainConfig(dataset_id=1, task=CLASSIFY, template={"kind": "lstm"})


def test_ingest_stores_typed_columns_the_target_and_the_report(services, mixed_csv):
    dataset = _ingest(services, mixed_csv, label_column="label", drop_columns=("noise",))
    assert dataset.task == CLASSIFY and dataset.target_column == "label" and dataset.text_column is None
    assert dataset.input_columns == ["x", "color", "flag", "when", "amount"]
    kinds = {c["name"]: (c["kind"], c["role"]) for c in dataset.columns}
    assert kinds["x"] == ("numeric", "input") and kinds["color"] == ("categorical", "input")
    assert kinds["noise"][1] == "dropped" and kinds["label"][1] == "target"
    assert dataset.labels == ["no", "yes"] and sum(dataset.classes.values()) == dataset.rows == 400
    report = dataset.report
    assert report["class_counts"] == dataset.classes and report["dropped_columns"] == ["noise"]
    assert {c["name"]: c["missing_share"] for c in report["columns"]}["x"] == 0
    train = load_split(dataset, "train")
    assert len(train) == dataset.train_rows == 320
    assert train["x"].dtype == np.float64 and set(train.columns) == {"label", "x", "color", "flag", "when", "amount"}
    again = services.ingest(mixed_csv, IngestOptions(task=CLASSIFY, validation_fraction=0.2, label_column="label",
                                                     drop_columns=("noise",)))
    assert again.reused and again.dataset.id == dataset.id


def test_detected_kinds_can_be_overridden(services, mixed_csv):
    dataset = _ingest(services, mixed_csv, label_column="label", column_kinds=(("flag", "categorical"),
                                                                               ("X", "categorical")))
    kinds = {c["name"]: c["kind"] for c in dataset.columns}
    assert kinds["flag"] == "categorical" and kinds["x"] == "categorical" and kinds["noise"] == "numeric"
    with pytest.raises(UserError, match="'number' is not a column kind; use one of numeric, categorical"):
        _ingest(services, mixed_csv, label_column="label", column_kinds=(("x", "number"),))
    with pytest.raises(UserError, match="'label' is the target: it takes no input kind"):
        _ingest(services, mixed_csv, label_column="label", column_kinds=(("label", "categorical"),))


def test_ingest_reports_a_planted_leak_and_suggests_the_target(services, tmp_path, breast_cancer):
    frame = breast_cancer.head(200).copy()
    frame["diagnosis_code"] = frame["target"].map({"malignant": 1, "benign": 0})
    path = tmp_path / "leaky.csv"
    frame.to_csv(path, index=False)
    dataset = _ingest(services, path)   # no target given: "target" is suggested by its name
    assert dataset.target_column == "target"
    assert [leak["column"] for leak in dataset.report["leaks"]] == ["diagnosis_code"]
    assert any("diagnosis_code" in w and "leaks the target" in w for w in dataset.report["warnings"])


def test_an_excel_upload_is_ingested(services, tmp_path, mixed):
    path = tmp_path / "sheet.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["a cover sheet"]}).to_excel(writer, sheet_name="About", index=False)
        mixed.drop(columns=["when"]).head(120).to_excel(writer, sheet_name="Data", index=False)
    dataset = _ingest(services, path, task=REGRESS, label_column="amount", sheet="Data")
    assert dataset.task == REGRESS and dataset.target_column == "amount" and dataset.labels == []
    assert dataset.report["target_summary"]["min"] < dataset.report["target_summary"]["max"]
    with pytest.raises(UserError, match="no sheet named 'Dat'; its sheets are About, Data"):
        _ingest(services, path, task=REGRESS, label_column="amount", sheet="Dat")


@pytest.mark.parametrize("options, task, message", [
    ({"label_column": "lable"}, CLASSIFY, 'Did you mean "label"'),
    ({"label_column": "color"}, REGRESS, "not numbers"),
    ({"label_column": "amount"}, CLASSIFY, "tabular-regression"),
    ({"label_column": "label", "drop_columns": ("label",)}, CLASSIFY, "cannot also be dropped"),
    ({"label_column": "label", "drop_columns": ("x", "noise", "color", "flag", "when", "amount")}, CLASSIFY,
     "No input column is left"),
])
def test_bad_choices_get_a_clear_message(services, mixed_csv, options, task, message):
    with pytest.raises(UserError, match=message):
        _ingest(services, mixed_csv, task=task, **options)
    assert services.list_datasets() == []


def test_blocking_tables_get_a_clear_message(services, tmp_path, mixed):
    one_class = tmp_path / "one_class.csv"
    mixed.assign(label="yes").to_csv(one_class, index=False)
    with pytest.raises(UserError, match="at least two classes"):
        _ingest(services, one_class, label_column="label")
    lonely = tmp_path / "lonely.csv"
    mixed.assign(label=["rare"] + ["common"] * (len(mixed) - 1)).to_csv(lonely, index=False)
    with pytest.raises(UserError, match="Class 'rare' .* only 1 row"):
        _ingest(services, lonely, label_column="label")
    (tmp_path / "notes.doc").write_text("x")
    with pytest.raises(UserError, match="tables can be"):
        _ingest(services, tmp_path / "notes.doc")
    assert services.list_datasets() == []


def test_a_file_over_the_upload_limit_is_refused(settings, mixed_csv):
    from backend.services import build_services

    small = settings.model_copy(update={"max_upload_mb": 0.001})
    services = build_services(small)
    try:
        with pytest.raises(UserError, match="the limit is"):
            _ingest(services, mixed_csv, label_column="label")
    finally:
        services.close()


@pytest.fixture
def mixed_csv(tmp_path, mixed):
    path = tmp_path / "mixed.csv"
    mixed.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["gbdt", "mlp", "ft-transformer"])
@pytest.mark.slow
def test_each_template_trains_through_the_runner(services, cancer_csv, kind):
    dataset = _ingest(services, cancer_csv)
    run = _train(services, dataset, kind)
    assert run.status == "succeeded", run.error
    folder = run.output_dir
    files = {p.name for p in __import__("pathlib").Path(folder).iterdir()}
    assert {"template.json", "preprocessing.json", "metrics.json", "README.md", "run_config.json"} <= files
    assert ("model.txt" if kind == "gbdt" else "model.safetensors") in files
    assert not any(name.endswith((".pkl", ".pickle", ".bin", ".pt")) for name in files)
    assert run.metrics["accuracy"] > 0.85 and run.metrics["labels"] == ["benign", "malignant"]
    assert set(run.metrics["feature_importance"]) == set(dataset.input_columns)
    timing = run.metrics["timing_seconds"]   # where the time went, as every run reports it
    assert timing["steps"] > 0 and timing["total"] >= timing["steps"] + timing["evaluation"]
    per_class = run.metrics["per_class"]
    assert sum(row["support"] for row in per_class.values()) == dataset.validation_rows
    assert all(0 <= row["f1"] <= 1 for row in per_class.values())
    progress = {m.key for m in services.get_metrics(run.id)}
    assert {"eval_accuracy", "progress"} <= progress
    loss_key = "eval_loss" if kind == "gbdt" else "train_loss"
    losses = [m.value for m in services.get_metrics(run.id, [loss_key])]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert "Validation metrics" in (__import__("pathlib").Path(folder) / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["gbdt", "mlp"])
@pytest.mark.slow
def test_regression_trains_and_beats_the_mean(services, diabetes_csv, kind):
    dataset = _ingest(services, diabetes_csv, task=REGRESS)
    assert dataset.target_column == "target"
    run = _train(services, dataset, kind, **({"epochs": "30", "learning_rate": "0.01"} if kind == "mlp" else {}))
    assert run.status == "succeeded", run.error
    validation = load_split(dataset, "validation")["target"]
    assert run.metrics["rmse"] < validation.std(ddof=0)     # better than predicting the mean
    assert [m.value for m in services.get_metrics(run.id, ["eval_rmse"])]


def test_reloaded_model_predicts_as_the_in_memory_one(services, settings, mixed_csv, tmp_path):
    from backend.tasks.tabular.model_io import TabularModel
    from backend.training.run import train

    dataset = _ingest(services, mixed_csv, label_column="label")
    config = apply_overrides(default_config(dataset.id, "mlp", dataset.task), TINY["mlp"])
    result = train(config, dataset, tmp_path / "run", on_progress=lambda step, values: None,
                   should_stop=lambda: False, settings=settings)
    rows = load_split(dataset, "validation")
    loaded = TabularModel.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict_output(rows), result.predictor.predict_output(rows), rtol=1e-6)
    # New rows with an unknown category, a missing value and an absent column still get an answer.
    answers = loaded.predict_records([{"x": 0.9, "color": "purple"}, {"x": None}, {}])
    assert [set(a) for a in answers] == [{"prediction", "probabilities"}] * 3


@pytest.mark.parametrize("kind", ["mlp", "ft-transformer"])
@pytest.mark.slow
def test_a_network_checkpoints_each_epoch_and_resumes_like_an_uninterrupted_run(services, settings, mixed_csv,
                                                                                 tmp_path, kind):
    from backend.errors import Cancelled
    from backend.training.run import train
    from tests.backend.training_fixtures import Recorder, quality

    dataset = _ingest(services, mixed_csv, label_column="label")
    config = apply_overrides(default_config(dataset.id, kind, dataset.task), {**TINY[kind], "log_every_steps": "1"})
    whole = Recorder()
    uninterrupted = train(config, dataset, tmp_path / "whole", on_progress=whole, should_stop=lambda: False,
                          settings=settings)
    steps_per_epoch = int(whole.calls[-1][1]["total_steps"]) // config.epochs
    assert len(whole.series("eval_accuracy")) == config.epochs   # live metrics once per epoch
    assert uninterrupted.predictor.model.parameters().__next__().device.type == "cpu"   # the run's device here
    # Stop one step into the second epoch: a checkpoint is saved, the run is cancelled.
    seen = Recorder()
    with pytest.raises(Cancelled):
        train(config, dataset, tmp_path / "stopped", on_progress=seen,
              should_stop=lambda: any(step > steps_per_epoch for step, _ in seen.calls), settings=settings)
    saved = sorted(path.name for path in (tmp_path / "stopped" / "checkpoints").glob("step-*"))
    assert saved == [f"step-{steps_per_epoch:08d}", f"step-{steps_per_epoch + 1:08d}"]  # the epoch's, then Stop's
    resumed = train(config, dataset, tmp_path / "stopped", on_progress=lambda step, values: None,
                    should_stop=lambda: False, resume=True, settings=settings)
    assert resumed.stop_reason == "completed" and not (tmp_path / "stopped" / "checkpoints").exists()
    assert quality(resumed.metrics) == quality(uninterrupted.metrics)
    rows = load_split(dataset, "validation")
    np.testing.assert_allclose(resumed.predictor.predict_output(rows), uninterrupted.predictor.predict_output(rows),
                               rtol=1e-6)


@pytest.mark.slow
def test_stop_cancels_a_boosting_run(services, cancer_csv):
    import time

    dataset = _ingest(services, cancer_csv)
    config = apply_overrides(default_config(dataset.id, "gbdt", dataset.task),
                             {"template.num_rounds": "100000", "template.early_stopping_rounds": "0",
                              "template.min_rows_per_leaf": "1", "template.num_leaves": "4",
                              # small steps: LightGBM finds splits for tens of thousands of rounds
                              # (at 0.1 it runs out of them after ~700 and the run ends by itself)
                              "learning_rate": "0.001"})
    run_id = services.runner.submit(config)
    services.runner.start()
    deadline = time.monotonic() + 60
    while not services.get_metrics(run_id, ["eval_loss"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert services.runner.stop(run_id) == "stopping"
    run = services.runner.wait(run_id, 60)
    assert run.status == "cancelled"
    assert 0 < len(services.get_metrics(run_id, ["eval_loss"])) < 100000

    # A queued run stopped before it starts is cancelled at once; resumed, it trains from the beginning.
    small = apply_overrides(default_config(dataset.id, "gbdt", dataset.task), TINY["gbdt"])
    services.runner.shutdown()          # no worker: the run stays queued until run_job below
    queued = services.runner.submit(small)
    assert services.runner.stop(queued) == "cancelled"
    services.runner.resume(queued)
    assert services.runner.run_job(queued).status == "succeeded"


def run_cli(capsys, *argv):
    code = app.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_the_cli_ingests_trains_and_predicts_a_table(capsys, tmp_path, monkeypatch, mixed):
    monkeypatch.setenv("MODELSMITH_HOME", str(tmp_path / "home"))
    table = tmp_path / "people.csv"
    mixed.to_csv(table, index=False)
    code, error = run_cli(capsys, "ingest", str(table), "--task", CLASSIFY, "--kind", "flag")
    assert code == 2 and "--kind expects COLUMN=KIND" in error["error"]
    code, ingested = run_cli(capsys, "ingest", str(table), "--task", CLASSIFY, "--target", "label", "--drop", "noise",
                             "--kind", "flag=categorical")
    assert code == 0 and ingested["label_column"] == "label" and ingested["labels"] == ["no", "yes"]
    assert {c["name"]: c["kind"] for c in ingested["columns"]}["flag"] == "categorical"
    code, run = run_cli(capsys, "train", "--dataset", str(ingested["dataset_id"]), "--template", "gbdt",
                        "--set", "num_rounds=30", "--set", "min_rows_per_leaf=5")
    assert code == 0 and run["status"] == "succeeded" and run["metrics"]["accuracy"] > 0.8
    code, answer = run_cli(capsys, "predict", "--run", str(run["run_id"]), "--json-rows",
                           '[{"x": 0.95, "color": "blue"}, {"x": 0.05, "color": "red"}, {"color": "mauve"}]')
    assert code == 0 and [a["prediction"] for a in answer["predictions"][:2]] == ["yes", "yes"]
    assert set(answer["predictions"][2]["probabilities"]) == {"no", "yes"}
    rows = tmp_path / "rows.csv"
    mixed.head(50).drop(columns=["when"]).to_csv(rows, index=False)
    code, batch = run_cli(capsys, "predict", "--run", str(run["run_id"]), "--file", str(rows), "--out",
                          str(tmp_path / "out"))
    assert code == 0 and batch["rows"] == 50 and batch["missing_columns"] == ["when"]
    assert batch["target_column"] == "label" and batch["metrics"]["accuracy"] > 0.8
    written = pd.read_csv(batch["path"])
    assert {"predicted_label", "probability_yes", "probability_no"} <= set(written.columns)
    code, error = run_cli(capsys, "predict", "--run", str(run["run_id"]), "--json-rows", "[1, 2]")
    assert code == 2 and "list of objects" in error["error"]
    code, error = run_cli(capsys, "predict", "--run", str(run["run_id"]), "a text")
    assert code == 2 and "--file" in error["error"]


@pytest.mark.slow
def test_a_table_model_exports_and_imports_as_a_run(services, settings, cancer_csv, tmp_path):
    import zipfile

    from backend.sharing.export import export_zip
    from backend.tasks.tabular.model_io import TabularModel

    dataset = _ingest(services, cancer_csv)
    run = _train(services, dataset, "gbdt")
    exported = export_zip(run, tmp_path / "out/")
    assert {"model.txt", "preprocessing.json", "template.json", "run_config.json"} <= set(exported.files)
    imported = services.import_model(exported.path, name="cancer trees")
    assert (imported.run.task, imported.run.template, imported.run.status) == (CLASSIFY, "gbdt", "succeeded")
    assert imported.run.dataset_id is None and imported.run.metrics["accuracy"] == run.metrics["accuracy"]
    rows = load_split(dataset, "validation")
    np.testing.assert_allclose(TabularModel.load(imported.run.output_dir).predict_output(rows),
                               TabularModel.load(run.output_dir).predict_output(rows))
    assert services.predict_rows(imported.run.id, [{}])[0]["prediction"] in ("benign", "malignant")
    # A demo link of the table model (tests/ui/test_table_demo.py covers it in full).
    token = services.publish_demo(imported.run.id).token
    assert services.demo_predict_row(token, {})["prediction"] in ("benign", "malignant")
    # Without its preprocessing a table model is no model: refused, nothing recorded.
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(exported.path) as source, zipfile.ZipFile(broken, "w") as target:
        for name in source.namelist():
            if name != "preprocessing.json":
                target.writestr(name, source.read(name))
    runs_before = len(services.list_runs())
    with pytest.raises(UserError, match="no model.safetensors and config.json"):
        services.import_model(broken)
    assert len(services.list_runs()) == runs_before
