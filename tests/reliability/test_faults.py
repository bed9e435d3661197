"""Faults injected in this process: out of memory, a crash inside a checkpoint save, many writers at once.

The process-level faults (SIGKILL, SIGTERM of a real app) are in test_crash_recovery.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from tests.conftest import PROJECT_ROOT
from tests.reliability.support import complete_checkpoints, ingest_toy, integrity, record_figures, tiny_lstm

pytestmark = [pytest.mark.slow]  # faults injected into real trainings

OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 GiB total capacity)"


@pytest.fixture
def services(tmp_path):
    from backend.services import build_services
    from backend.settings import Settings

    built = build_services(Settings(home=tmp_path / "home", _env_file=None))
    yield built
    built.close()


def test_oom_from_train_fn_fails_with_advice_and_the_next_job_succeeds(tmp_path):
    """A train function raising torch.OutOfMemoryError: that run fails with advice, the queue goes on."""
    from backend.services import build_services
    from backend.settings import Settings
    from backend.training.run import train

    def train_fn(config, dataset, output_dir, **kwargs):
        if config.name == "too-big":
            raise torch.OutOfMemoryError(OOM_TEXT)
        return train(config, dataset, output_dir, **kwargs)

    services = build_services(Settings(home=tmp_path / "home", _env_file=None), train_fn=train_fn)
    try:
        dataset = ingest_toy(services, tmp_path, pairs=40)
        big = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="too-big"))
        fine = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="fine"))
        services.runner.start()
        failed, succeeded = services.runner.wait(big, 120), services.runner.wait(fine, 300)
    finally:
        services.close()
    assert failed.status == "failed"
    assert "Out of memory" in failed.error and "batch size" in failed.error and "max length" in failed.error
    assert "Traceback" not in failed.error
    assert succeeded.status == "succeeded", succeeded.error


def test_oom_in_model_forward_fails_with_advice_and_the_next_job_succeeds(services, tmp_path, monkeypatch):
    """The real trainer, its model forward raising OOM once: advice names batch_size and max_length."""
    import backend.tasks.text_classification.training as trainer  # the text classifier's batch loss

    real_logits = trainer.logits_of
    raised = []

    def logits_of(model, batch):
        if not raised:
            raised.append(True)
            raise torch.OutOfMemoryError(OOM_TEXT)
        return real_logits(model, batch)

    monkeypatch.setattr(trainer, "logits_of", logits_of)
    dataset = ingest_toy(services, tmp_path, pairs=40)
    first = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="first"))
    second = services.runner.submit(tiny_lstm(dataset.id, epochs=1, name="second"))
    services.runner.start()
    failed, succeeded = services.runner.wait(first, 120), services.runner.wait(second, 300)
    assert failed.status == "failed"
    assert "Out of memory" in failed.error and "batch_size (now 8)" in failed.error
    assert "max_length (now 32)" in failed.error
    assert succeeded.status == "succeeded", succeeded.error
    record_figures("faults_oom", {"oom_injected": 2, "runs_failed_with_advice": 2, "next_job_succeeded": 2})


# A child process trains run N and SIGKILLs itself inside its second checkpoint save: either after
# Accelerate wrote the weights but before the trainer state (mode "before_state"), or with the
# staging folder complete, just before it is renamed into place (mode "before_rename").
CRASH_IN_SAVE = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import backend.training.core as trainer  # where every loop saves its checkpoints
from backend.services import build_services
from backend.settings import Settings

real_save, calls, mode = trainer.save_checkpoint, [], sys.argv[4]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def save_checkpoint(accelerator, output_dir, state, tokenizer):
    calls.append(state.global_step)
    if len(calls) == 2 and mode == "before_state":
        real_state = accelerator.save_state
        accelerator.save_state = lambda *a, **k: (real_state(*a, **k), die())
    if len(calls) == 2 and mode == "before_rename":
        real_rename = os.rename
        os.rename = lambda source, target: (die() if os.path.basename(str(source)).startswith(".tmp-")
                                            else real_rename(source, target))
    return real_save(accelerator, output_dir, state, tokenizer)

trainer.save_checkpoint = save_checkpoint
services = build_services(Settings(home=sys.argv[2], launcher="thread", _env_file=None))  # the patch is in this process
services.runner.run_job(int(sys.argv[3]))
sys.exit(3)  # never reached: the crash comes first
"""


@pytest.mark.slow  # two processes and two tiny trainings: ~40-90 s each on a busy 2-core machine
@pytest.mark.parametrize("mode", ["before_state", "before_rename"])
def test_crash_inside_checkpoint_save_resumes_from_the_previous_checkpoint(services, tmp_path, caplog, mode):
    dataset = ingest_toy(services, tmp_path, pairs=40)  # 9 optimizer steps per epoch
    run_id = services.runner.submit(tiny_lstm(dataset.id, epochs=3, name="crash-in-save"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSMITH_")} | {"HF_HUB_OFFLINE": "1"}
    child = subprocess.run([sys.executable, "-c", CRASH_IN_SAVE, str(PROJECT_ROOT), str(services.settings.home),
                            str(run_id), mode], env=env, capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode(errors="replace")[-3000:]

    output_dir = services.settings.runs_dir / str(run_id)
    first = complete_checkpoints(output_dir)
    staging = [p for p in (output_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert len(first) == 1 and first[0] > 0, first
    assert len(staging) == 1 and any(staging[0].glob("*.safetensors")), "the crash came inside the save"
    assert (staging[0] / "trainer_state.json").is_file() == (mode == "before_rename")
    assert services.repo.get_run(run_id).status == "running"  # the dead process could not say otherwise

    assert services.runner.recover(all_running=True) == [run_id]  # what the app does at its next start
    assert services.repo.get_run(run_id).status == "interrupted"
    assert integrity(services.settings.home / "modelsmith.db") == ("ok", [])
    services.runner.resume(run_id)
    with caplog.at_level(logging.INFO, logger="backend.training.checkpoints"):
        run = services.runner.run_job(run_id)
    assert run.status == "succeeded", run.error
    resumed = [int(m) for m in re.findall(r"resumed from \S+ \(step (\d+)\)", caplog.text)]
    assert resumed == [first[0]], caplog.text[-2000:]
    early = [m for m in services.repo.get_metrics(run_id, ["train_loss"]) if m.step <= first[0]]
    assert len(early) == len({m.step for m in early}), "steps before the checkpoint were trained twice"
    record_figures(f"faults_crash_in_checkpoint_save_{mode}", {
        "crashes": 1, "resumed_from_step": first[0], "half_checkpoint_used": False, "final_status": run.status})


def test_concurrent_writers_and_a_reader_never_see_database_is_locked(services, tmp_path):
    """8 threads x 500 writes (metrics and heartbeats) while a reader lists runs and metrics."""
    dataset = ingest_toy(services, tmp_path, pairs=10)
    run_ids = [services.repo.create_run(tiny_lstm(dataset.id, name=f"writer-{i}")) for i in range(8)]
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0]
    writes_per_thread = 500

    def writer(run_id: int) -> None:
        try:
            for step in range(writes_per_thread):
                if step % 5 == 4:
                    services.repo.heartbeat(run_id, progress=step / writes_per_thread)
                else:
                    services.repo.add_metrics(run_id, step, {"train_loss": 1.0 / (step + 1)})
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                services.repo.list_runs()
                services.repo.get_metrics(run_ids[reads[0] % len(run_ids)])
                services.repo.latest_metrics(run_ids[0])
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(run_id,)) for run_id in run_ids]
    reading = threading.Thread(target=reader)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    seconds = time.perf_counter() - started
    done.set()
    reading.join(60)
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors[:3]]
    for run_id in run_ids:
        assert len(services.repo.get_metrics(run_id)) == writes_per_thread * 4 // 5
    assert integrity(services.settings.home / "modelsmith.db") == ("ok", [])
    record_figures("concurrent_writes", {"writer_threads": 8, "writes": 8 * writes_per_thread, "reads": reads[0],
                                         "seconds": round(seconds, 1), "errors": len(errors)})


def test_ctrl_c_while_the_cli_trains_marks_the_run_interrupted_at_once(services, tmp_path):
    """KeyboardInterrupt reaches the job in the CLI's main thread: the row says interrupted, not running."""
    from backend.jobs.runner import JobRunner

    def train_fn(config, dataset, output_dir, *, on_progress, should_stop, resume=False):
        on_progress(5, {"train_loss": 0.5, "progress": 0.1})
        raise KeyboardInterrupt

    dataset = ingest_toy(services, tmp_path, pairs=10)
    runner = JobRunner(services.repo, services.settings, train_fn=train_fn)
    run_id = runner.submit(tiny_lstm(dataset.id, name="ctrl-c"))
    with pytest.raises(KeyboardInterrupt):
        runner.run_job(run_id)
    run = services.repo.get_run(run_id)
    assert run.status == "interrupted" and "Resume" in run.error
    assert not runner.is_active(run_id)
    runner.resume(run_id)  # and it can be resumed like any interrupted run
    assert services.repo.get_run(run_id).status == "queued"


def test_checkpoint_files_are_on_disk_before_the_rename_publishes_them(tmp_path, monkeypatch):
    """A power cut (not just a killed process) must not leave a complete-looking but hollow checkpoint."""
    from dataclasses import dataclass

    import backend.training.checkpoints as checkpoints
    from backend.training.devices import get_accelerator

    @dataclass
    class State:
        global_step: int = 7

    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def rename(source, target):
        events.append(("rename", str(source)))
        return real_rename(source, target)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    monkeypatch.setattr(checkpoints.os, "rename", rename)
    final = checkpoints.save_checkpoint(get_accelerator("cpu", "no"), tmp_path, State(), None)
    assert final.name == "step-00000007" and (final / "trainer_state.json").is_file()
    staging = str((tmp_path / "checkpoints" / ".tmp-step-00000007").resolve())
    renamed_at = events.index(("rename", str(tmp_path / "checkpoints" / ".tmp-step-00000007")))
    synced_before = {path for kind, path in events[:renamed_at] if kind == "fsync"}
    assert f"{staging}/trainer_state.json" in synced_before and staging in synced_before
    assert ("fsync", str((tmp_path / "checkpoints").resolve())) in events[renamed_at:]
