"""The CLI: same code path as the UI, one JSON document on stdout, exit code 2 on bad input."""

import json
import subprocess
import sys

import pytest

import app
from tests.conftest import PROJECT_ROOT

TINY_LSTM = ["--set", "epochs=2", "--set", "vocab_size=120", "--set", "embedding_dim=16", "--set", "hidden_size=16",
             "--set", "batch_size=8", "--set", "learning_rate=0.01"]


def run_cli(capsys, *argv):
    code = app.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def home_on_each_database(home, each_database_url, monkeypatch):
    """The home dir, with the database first the SQLite file in it, then a fresh PostgreSQL database."""
    if each_database_url:
        monkeypatch.setenv("MODELSMITH_DATABASE_URL", each_database_url)
    else:
        monkeypatch.delenv("MODELSMITH_DATABASE_URL", raising=False)
    return home


@pytest.fixture
def toy_csv(tmp_path):
    rows = ["message,verdict"]
    for i in range(40):
        rows.append(f"this is good stuff number {i},happy")
        rows.append(f"this is bad stuff number {i},sad")
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_ingest_detects_sms_columns(capsys, home, shared_data):
    code, result = run_cli(capsys, "ingest", str(shared_data / "sms_spam" / "sms_spam.tsv"))
    assert code == 0
    assert (result["rows"], result["text_column"], result["label_column"]) == (5574, "SMS", "Label")
    assert result["classes"] == {"ham": 4827, "spam": 747}
    assert result["train_rows"] + result["validation_rows"] == 5574
    assert isinstance(result["dataset_id"], int) and isinstance(result["warnings"], list)


def test_bad_input_exits_2_with_a_message(capsys, home, tmp_path):
    code, result = run_cli(capsys, "ingest", str(tmp_path / "missing.csv"))
    assert code == 2 and "does not exist" in result["error"]
    code, result = run_cli(capsys, "train", "--dataset", "42", "--template", "lstm")
    assert code == 2 and "Dataset 42 does not exist" in result["error"]
    code, result = run_cli(capsys, "train", "--dataset", "1", "--template", "gpt9")
    assert code == 2 and "Unknown template 'gpt9'" in result["error"]
    code, result = run_cli(capsys, "predict", "--run", "7", "hello")
    assert code == 2 and "Run 7 does not exist" in result["error"]


@pytest.mark.slow
@pytest.mark.e2e
def test_train_predict_runs_round_trip(capsys, home_on_each_database, toy_csv):
    home = home_on_each_database
    code, ingested = run_cli(capsys, "ingest", str(toy_csv), "--text-column", "message", "--label-column", "verdict")
    assert code == 0 and ingested["classes"] == {"happy": 40, "sad": 40}
    code, result = run_cli(capsys, "train", "--dataset", str(ingested["dataset_id"]), "--template", "lstm", *TINY_LSTM)
    assert code == 0, result
    assert result["status"] == "succeeded"
    assert set(result["metrics"]) >= {"accuracy", "macro_f1"}
    timing = result["metrics"]["timing_seconds"]  # where the run's time went
    assert timing["steps"] > 0 and timing["total"] >= timing["steps"] + timing["setup"] - 0.01  # rounding
    assert (home / "runs" / str(result["run_id"]) / "model.safetensors").is_file()
    code, predictions = run_cli(capsys, "predict", "--run", str(result["run_id"]), "so good", "so bad")
    assert code == 0 and len(predictions) == 2
    assert set(predictions[0]["scores"]) == {"happy", "sad"}
    assert sum(predictions[0]["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    code, runs = run_cli(capsys, "runs")
    assert [r["run_id"] for r in runs] == [result["run_id"]] and runs[0]["status"] == "succeeded"
    code, refused = run_cli(capsys, "resume", "--run", str(result["run_id"]))
    assert code == 2 and "only interrupted or cancelled" in refused["error"]
    code, refused = run_cli(capsys, "train", "--dataset", str(ingested["dataset_id"]), "--template", "lstm",
                            "--set", "batch_size=0")
    assert code == 2 and "batch_size" in refused["error"]


def test_an_unreachable_database_server_is_named_and_exits_2(capsys, home, monkeypatch):
    monkeypatch.setenv("MODELSMITH_DATABASE_URL", f"postgresql://modelsmith:s3cret@/modelsmith?host={home}/no-server")
    code, result = run_cli(capsys, "runs")
    assert code == 2
    assert result["error"].startswith("Cannot connect to the database postgresql+psycopg://modelsmith:***@/modelsmith")
    assert "Check MODELSMITH_DATABASE_URL" in result["error"] and "s3cret" not in result["error"]


@pytest.mark.slow
def test_cli_subprocess_prints_json_only_on_stdout(tmp_path):
    env = {"MODELSMITH_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           **{k: v for k, v in __import__("os").environ.items() if k.startswith(("PYTHON", "HOME"))}}
    done = subprocess.run([sys.executable, "app.py", "runs", "--json"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("variable, value", [("MODELSMITH_PORT", "0"), ("MODELSMITH_MAX_IMPORT_MB", "lots"),
                                             ("MODELSMITH_DEVICE", "tpu"), ("MODELSMITH_MAX_CONCURRENT_JOBS", "4")])
def test_an_invalid_setting_names_the_variable_and_exits_2(capsys, home, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    code, result = run_cli(capsys, "runs")
    assert code == 2
    assert variable in result["error"] and repr(value) in result["error"]
    assert not (home / "modelsmith.db").exists()  # nothing was created with half-valid settings
