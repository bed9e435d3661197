"""A database made before migration 0004 (revision 0003), holding a dataset and a finished run with
real stored files, upgrades to head: the dataset still trains, the run still predicts and exports."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from sqlalchemy import text

from backend.sharing.export import export_zip
from backend.tasks.text_classification.predictor import load_predictor
from backend.jobs.runner import JobRunner
from storage.database import make_engine, make_sessions, migrate
from storage.repository import Repository
from tests.backend.export_fixtures import trained_folder
from tests.backend.lm_fixtures import one_thread
from tests.backend.training_fixtures import lstm_config, rule_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = ["a good day", "bad food", "good good good"]


def _rows_at_0003(dataset, run_folder) -> list[tuple[str, dict]]:
    """What a 0003 app wrote: a dataset, a run trained on it with its metrics, an imported run."""
    config = json.loads((run_folder / "run_config.json").read_text(encoding="utf-8"))
    config["dataset_id"] = 1
    imported_config = dict(config, dataset_id=1)  # 0003 imports carried a placeholder dataset 1
    return [
        ("INSERT INTO datasets (id, name, task, content_hash, path, text_column, label_column, rows, train_rows,"
         " validation_rows, labels_json, classes_json, report_json, created_at) VALUES (1, 'rule',"
         " 'text-classification', :hash, :path, 'text', 'label', :rows, :train_rows, :validation_rows, :labels,"
         " :classes, '{}', '2026-11-01 00:00:00')",
         dict(hash="f" * 64, path=dataset.path, rows=dataset.rows, train_rows=dataset.train_rows,
              validation_rows=dataset.validation_rows, labels=json.dumps(dataset.labels),
              classes=json.dumps(dataset.classes))),
        ("INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, started_at,"
         " finished_at, output_dir, metrics_json, progress) VALUES (1, 'old lstm', 1, 'text-classification',"
         " 'lstm', 'succeeded', :config, '2026-11-01 00:00:00', '2026-11-01 00:00:01', '2026-11-01 00:01:00',"
         " :folder, :metrics, 1.0)",
         dict(config=json.dumps(config), folder=str(run_folder),
              metrics=(run_folder / "metrics.json").read_text(encoding="utf-8"))),
        ("INSERT INTO metrics (run_id, key, step, value, time) VALUES (1, 'train_loss', 5, 0.6,"
         " '2026-11-01 00:00:30'), (1, 'train_loss', 10, 0.4, '2026-11-01 00:00:50')", {}),
        ("INSERT INTO runs (id, name, dataset_id, task, template, status, config_json, created_at, output_dir,"
         " metrics_json, progress) VALUES (2, 'imported', NULL, 'text-classification', 'lstm', 'succeeded',"
         " :config, '2026-11-01 00:02:00', :folder, '{}', 1.0)",
         dict(config=json.dumps(imported_config), folder=str(run_folder))),
    ]


def test_a_0003_database_upgrades_and_its_dataset_trains_and_its_run_predicts_and_exports(settings, tmp_path):
    dataset = rule_dataset(settings.datasets_dir / "rule", train_rows=120, validation_rows=20)
    run_folder = settings.runs_dir / "1"
    shutil.copytree(trained_folder("lstm"), run_folder)
    before = load_predictor(run_folder, device="cpu").predict(TEXTS)

    engine = make_engine(settings.resolved_database_url)
    migrate(engine, "0003")
    with engine.begin() as connection:
        for statement, values in _rows_at_0003(dataset, run_folder):
            connection.execute(text(statement), values)
        if connection.dialect.name == "postgresql":
            # The ids above are written by hand; an app's own inserts would have moved the sequences past them.
            for table in ("datasets", "runs", "metrics"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"

    repo = Repository(make_sessions(engine))
    stored = repo.get_dataset(1)
    assert (stored.text_column, stored.label_column, stored.input_columns, stored.target_column) == \
        ("text", "label", ["text"], "label")
    assert stored.columns == [{"name": "text", "type": "string"}, {"name": "label", "type": "string"}]
    old_run = repo.get_run(1)
    assert old_run.status == "succeeded" and old_run.imported_from is None
    assert [m.value for m in repo.get_metrics(1, ["train_loss"])] == [0.6, 0.4]
    assert repo.get_run(2).dataset_id is None

    # The old run predicts as before, and exports.
    assert load_predictor(old_run.output_dir, device="cpu").predict(TEXTS) == before
    exported = export_zip(old_run, tmp_path / "downloads/")
    with zipfile.ZipFile(exported.path) as archive:
        assert {"model.safetensors", "config.json", "run_config.json"} <= set(archive.namelist())

    # The old dataset trains a new run.
    runner = JobRunner(repo, settings)
    with one_thread():
        run_id = runner.submit(lstm_config(dataset_id=1, epochs=1, name="after upgrade"))
        finished = runner.run_job(run_id)
    assert finished.status == "succeeded", finished.error
    assert finished.metrics["macro_f1"] >= 0.0 and (settings.runs_dir / str(run_id) / "model.safetensors").is_file()
    engine.dispose()
