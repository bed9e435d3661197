"""Tiny finished runs of every template, recorded in a test repository, for the export/import/Space/Hub tests.

Models are trained once per test session (cached in this module) into a temporary folder, then
copied into each test's own runs dir and recorded as succeeded runs, as the job runner would.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from backend.config import TrainConfig
from storage.records import RunRecord
from storage.repository import Repository
from tests.backend import lm_fixtures
from tests.backend.training_fixtures import (Recorder, finetune_config, lstm_config, never, rule_dataset,
                                             scratch_config, tiny_bert_folder)

CLASSIFIER_KINDS = ("lstm", "transformer-scratch", "transformer")
GENERATOR_KINDS = ("lstm-lm", "transformer-lm")
_ROOT = Path(tempfile.mkdtemp(prefix="modelsmith-export-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def _config(kind: str) -> TrainConfig:
    if kind == "lstm":
        return lstm_config(epochs=1)
    if kind == "transformer-scratch":
        return scratch_config(epochs=1)
    if kind == "transformer":
        return finetune_config(str(tiny_bert_folder(_ROOT / "tiny-bert")), epochs=1)
    if kind == "lstm-lm":
        return lm_fixtures.lstm_lm_config(max_steps=20, eval_every_steps=10)
    if kind == "transformer-lm":
        return lm_fixtures.transformer_lm_config(max_steps=20, eval_every_steps=10)
    raise ValueError(kind)


@functools.cache
def trained_folder(kind: str) -> Path:
    """The run folder of one finished tiny run of `kind`, trained once per session."""
    from backend.training.run import get_accelerator, train

    config = _config(kind)
    if config.task == "text-generation":
        dataset = lm_fixtures.dataset()
    else:
        dataset = rule_dataset(_ROOT / "rule-data", train_rows=120, validation_rows=20)
    folder = _ROOT / f"run-{kind}"
    with lm_fixtures.one_thread():
        train(config, dataset, folder, on_progress=Recorder(), should_stop=never, accelerator=get_accelerator("cpu"))
    return folder


def record_run(repo: Repository, runs_dir: Path, kind: str, name: str | None = None) -> RunRecord:
    """A succeeded run of `kind` in `repo`, its files copied from the trained folder into runs_dir/<id>."""
    source = trained_folder(kind)
    config = TrainConfig.model_validate_json((source / "run_config.json").read_text(encoding="utf-8"))
    dataset = repo.add_dataset(name=f"data-{kind}", task=config.task, content_hash=os.urandom(32).hex(),
                               path=str(source), text_column="text", label_column=None, rows=1, train_rows=1,
                               validation_rows=1, labels=[], classes={}, report={})
    config = config.model_copy(update={"dataset_id": dataset.id, "name": name or f"tiny {kind}"})
    run_id = repo.create_run(config)
    folder = runs_dir / str(run_id)
    shutil.copytree(source, folder)
    repo.mark_running(run_id, str(folder))
    repo.finish(run_id, "succeeded", metrics=json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
    return repo.get_run(run_id)


def tree(folder: Path) -> set[str]:
    """Every path under `folder` (relative), to show that nothing was written."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}
