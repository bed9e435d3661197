"""`app.py export` and `app.py import`: one JSON document on stdout, exit code 2 with {"error"} on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import app
from tests.backend.export_fixtures import record_run
from tests.conftest import PROJECT_ROOT


def run_cli(capsys, *argv):
    code = app.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def home(settings, monkeypatch):
    """The CLI's home is the test repository's home."""
    monkeypatch.setenv("MODELSMITH_HOME", str(settings.home))
    return settings.home


def test_export_import_predict_round_trip(capsys, home, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm", name="spam")
    code, exported = run_cli(capsys, "export", "--run", str(run.id), "--format", "zip", "--out", str(tmp_path))
    assert code == 0 and exported["run_id"] == run.id and exported["format"] == "zip"
    path = Path(exported["path"])
    assert path == tmp_path / f"spam-run{run.id}.zip" and path.is_file()
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == exported["files"]
    code, imported = run_cli(capsys, "import", str(path), "--name", "spam again")
    assert code == 0 and imported["run_id"] != run.id
    assert (imported["task"], imported["name"], imported["template"]) == ("text-classification", "spam again", "lstm")
    assert imported["labels"] == ["negative", "positive"]
    texts = ["a good day", "bad food"]
    _, before = run_cli(capsys, "predict", "--run", str(run.id), *texts)
    _, after = run_cli(capsys, "predict", "--run", str(imported["run_id"]), *texts)
    assert after == before


def test_export_space_folder_and_import_of_a_language_model(capsys, home, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm-lm")
    code, space = run_cli(capsys, "export", "--run", str(run.id), "--format", "space", "--out", str(tmp_path / "sp"))
    assert code == 0 and space["format"] == "space" and Path(space["path"]).is_dir()
    assert {"app.py", "requirements.txt", "README.md", "model/model.safetensors"} <= set(space["files"])
    code, exported = run_cli(capsys, "export", "--run", str(run.id), "--out", str(tmp_path / "lm.zip"))
    assert code == 0 and exported["format"] == "zip"  # zip is the default format
    code, imported = run_cli(capsys, "import", exported["path"])
    assert code == 0 and imported["task"] == "text-generation" and imported["labels"] == []


def test_an_out_path_ending_in_a_slash_is_a_folder_created_if_needed(capsys, home, repo, settings, tmp_path,
                                                                    monkeypatch):
    # The README's example: `export --out downloads/` then `import downloads/<name>-run<id>.zip`.
    monkeypatch.chdir(tmp_path)
    run = record_run(repo, settings.runs_dir, "lstm", name="spam")
    code, exported = run_cli(capsys, "export", "--run", str(run.id), "--format", "zip", "--out", "downloads/")
    assert code == 0 and (tmp_path / "downloads").is_dir()
    assert Path(exported["path"]) == tmp_path / "downloads" / f"spam-run{run.id}.zip"
    code, imported = run_cli(capsys, "import", f"downloads/spam-run{run.id}.zip")
    assert code == 0 and imported["labels"] == ["negative", "positive"]
    code, space = run_cli(capsys, "export", "--run", str(run.id), "--format", "space-zip", "--out", "spaces/")
    assert code == 0 and Path(space["path"]) == tmp_path / "spaces" / f"spam-run{run.id}-space.zip"


@pytest.mark.parametrize("argv, message", [
    (["export", "--run", "99", "--out", "x.zip"], "Run 99 does not exist"),
    (["export", "--run", "abc"], "--run expects a run id"),
    (["export", "--run", "1", "--format", "tar"], "--format 'tar' is unknown"),
    (["import", "missing.zip"], "is not a zip archive"),
])
def test_bad_input_exits_2_with_an_error(argv, message, capsys, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, result = run_cli(capsys, *argv)
    assert code == 2 and message in result["error"]
    assert not (tmp_path / "x.zip").exists()


def test_importing_a_hostile_zip_exits_2_and_adds_no_run(capsys, home, repo, tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../evil.json", "{}")
    code, result = run_cli(capsys, "import", str(path))
    assert code == 2 and "'..' path" in result["error"]
    assert repo.list_runs() == [] and not (home / "evil.json").exists()


def test_export_of_an_unfinished_run_exits_2(capsys, home, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm")
    repo.requeue(run.id)
    code, result = run_cli(capsys, "export", "--run", str(run.id), "--format", "space", "--out", str(tmp_path / "s"))
    assert code == 2 and "only a succeeded run" in result["error"]
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_shell_command_prints_json_and_exits_2(home, tmp_path):
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_text("hello", encoding="utf-8")
    env = {**os.environ, "MODELSMITH_HOME": str(home)}
    done = subprocess.run([sys.executable, "app.py", "import", str(not_a_zip), "--json"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "is not a zip archive" in json.loads(done.stdout)["error"]
