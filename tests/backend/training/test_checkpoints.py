"""Checkpoints published in the background: the training thread only writes the files."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
import torch

from backend.training import checkpoints
from backend.training.devices import get_accelerator


@dataclass
class State:
    global_step: int = 0


@pytest.fixture()
def accelerator():
    accelerator = get_accelerator("cpu")
    accelerator.prepare(torch.nn.Linear(2, 2))
    yield accelerator
    accelerator.free_memory()


def test_the_publish_runs_while_training_goes_on_and_ends_before_the_run_does(tmp_path, accelerator, monkeypatch):
    release, real_sync = threading.Event(), checkpoints.sync_tree

    def slow_sync(folder):  # a slow disk: fsync takes until the test releases it
        assert release.wait(30)
        real_sync(folder)

    monkeypatch.setattr(checkpoints, "sync_tree", slow_sync)
    with checkpoints.publishing_in_background(tmp_path):
        final = checkpoints.save_checkpoint(accelerator, tmp_path, State(global_step=3), None)
        # save_checkpoint returned with the files written and the publish still waiting for the disk
        assert (tmp_path / "checkpoints" / ".tmp-step-00000003" / "trainer_state.json").is_file()
        assert checkpoints.latest_checkpoint(tmp_path) is None
        release.set()
    assert checkpoints.latest_checkpoint(tmp_path) == final  # leaving the block waited for it
    assert not (tmp_path / "checkpoints" / ".tmp-step-00000003").exists()


def test_a_new_checkpoint_waits_for_the_previous_publish_and_rotation_keeps_two(tmp_path, accelerator):
    with checkpoints.publishing_in_background(tmp_path):
        for step in (1, 2, 3, 3):  # step 3 twice: epoch end, then a stop at the same step
            checkpoints.save_checkpoint(accelerator, tmp_path, State(global_step=step), None)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000003"]


def test_a_failed_publish_is_raised_when_the_run_ends(tmp_path, accelerator, monkeypatch):
    def full_disk(folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "sync_tree", full_disk)
    with pytest.raises(OSError, match="No space left"):
        with checkpoints.publishing_in_background(tmp_path):
            checkpoints.save_checkpoint(accelerator, tmp_path, State(global_step=5), None)
    assert checkpoints.latest_checkpoint(tmp_path) is None  # never half-published
    assert checkpoints._publishers == {}  # the run's publisher is gone with the run
