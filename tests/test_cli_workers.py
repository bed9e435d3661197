"""The CLI's worker-process options: GPUs for a run, several machines, joining a run; bad values
get one JSON error (exit code 2) before anything is queued or launched."""

import json

import app


def run_cli(capsys, *argv):
    code = app.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_gpu_and_machine_options_that_cannot_work_here_are_refused_before_a_run_is_queued(capsys, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("MODELSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELSMITH_DEVICE", "cpu")
    monkeypatch.setenv("MODELSMITH_LAUNCHER", "process")
    csv = tmp_path / "toy.csv"
    csv.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(20)), encoding="utf-8")
    code, ingested = run_cli(capsys, "ingest", str(csv))
    assert code == 0, ingested
    dataset = str(ingested["dataset_id"])
    code, result = run_cli(capsys, "train", "--dataset", dataset, "--template", "lstm", "--gpus", "all")
    assert code == 2 and "trains on the CPU" in result["error"]
    monkeypatch.setenv("MODELSMITH_LAUNCHER", "thread")
    code, result = run_cli(capsys, "train", "--dataset", dataset, "--template", "lstm", "--nodes", "2")
    assert code == 2 and "MODELSMITH_LAUNCHER=process" in result["error"]
    code, result = run_cli(capsys, "runs")
    assert code == 0 and result == []  # nothing was queued
    code, result = run_cli(capsys, "join", "--run", "99", "--machine-rank", "1")
    assert code == 2 and "Run 99 does not exist" in result["error"]
