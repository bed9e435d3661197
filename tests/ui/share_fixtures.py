"""Helpers for the Share tab and demo page tests: tiny trained runs and a served app on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

from backend.config import apply_overrides, default_config
from backend.data.store import IngestOptions, ingest
from tests.ui.conftest import TINY_LSTM_VALUES

LM_PATTERN = "the cat sat on a mat.\nbig dogs run far!\n"
TINY_LM_VALUES = {"block_size": 32, "hidden_size": 48, "batch_size": 16, "learning_rate": 0.01, "max_steps": 40,
                  "eval_every_steps": 20, "eval_batches": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_toy_csv(folder: Path) -> Path:
    """80 rows, `message` -> `verdict`: 'good' texts are happy, 'bad' texts are sad."""
    rows = ["message,verdict"]
    for i in range(40):
        rows += [f"what a good day number {i},happy", f"what a bad day number {i},sad"]
    path = folder / "feedback.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _train(services, path: Path, task: str, template: str, values: dict, name: str):
    dataset = ingest(path, IngestOptions(task=task, name=name), settings=services.settings, repo=services.repo).dataset
    config = apply_overrides(default_config(dataset.id, template, task), {k: str(v) for k, v in values.items()})
    run = services.runner.run_job(services.runner.submit(config))
    assert run.status == "succeeded", run.error
    return run


def train_classifier(services, folder: Path):
    """A tiny LSTM classifier of the toy CSV, trained in the foreground."""
    return _train(services, write_toy_csv(folder), "text-classification", "lstm", TINY_LSTM_VALUES, "toy")


def train_generator(services, folder: Path):
    """A tiny character LSTM language model of a repeated two-line pattern."""
    path = folder / "pattern.txt"
    path.write_text(LM_PATTERN * 60, encoding="utf-8")
    return _train(services, path, "text-generation", "lstm-lm", TINY_LM_VALUES, "pattern")


def fake_run(services, tmp_path, status="succeeded", name="spam filter"):
    """A run row with a model file on disk, without training (demo links only check the file is there)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    dataset = ingest(write_toy_csv(tmp_path), IngestOptions(), settings=services.settings, repo=services.repo).dataset
    run_id = services.repo.create_run(default_config(dataset.id, "lstm"), name=name)
    folder = services.settings.runs_dir / str(run_id)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"not really weights")
    (folder / "config.json").write_text("{}")
    services.repo.mark_running(run_id, str(folder))
    if status != "running":
        services.repo.finish(run_id, status)
    return services.repo.get_run(run_id)
