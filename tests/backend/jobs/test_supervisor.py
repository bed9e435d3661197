"""The supervisor of worker processes, with stand-in workers (plain Python, no torch): a worker that
ignores SIGTERM is killed after the grace period together with a child in a session of its own (as
torchrun's ranks are); a worker that dies without a word leaves the run `interrupted`."""

import sys
import time

import pytest

import backend.jobs.supervisor as supervisor
from backend.config import TrainConfig
from backend.jobs.launch import LaunchPlan
from backend.jobs.processes import descendants, is_alive
from backend.jobs.runner import JobRunner
from backend.settings import Settings
from backend.tasks.text_classification.configs import LstmTemplate

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
rank = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", rank], start_new_session=True)  # like torchrun's ranks
time.sleep(600)
"""


@pytest.fixture
def runner(repo, settings, tmp_path, monkeypatch):
    def stand_in(script):
        monkeypatch.setattr(supervisor, "plan_launch", lambda settings, run_id, gpus: LaunchPlan(
            argv=[sys.executable, "-c", script], port=40000 + int(run_id)))

    dataset = repo.add_dataset(name="toy", task="text-classification", content_hash="abc", path=str(tmp_path),
                               text_column="text", label_column="label", rows=10, train_rows=9, validation_rows=1,
                               labels=["a", "b"], classes={"a": 5, "b": 5}, report={})
    built = JobRunner(repo, Settings(home=settings.home, launcher="process", device="cpu", stop_grace_s=1,
                                     _env_file=None))
    built.stand_in, built.dataset_id = stand_in, dataset.id
    yield built
    built.shutdown()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period_with_its_ranks(runner, repo):
    runner.stand_in(STUBBORN)
    run_id = runner.submit(TrainConfig(dataset_id=runner.dataset_id, template=LstmTemplate(vocab_size=100)))
    runner.start()
    run = wait_for(lambda: (r := repo.get_run(run_id)).worker_port and r)
    tree = [(run.worker_pid, run.worker_started), *wait_for(lambda: descendants(run.worker_pid))]
    assert runner.stop(run_id) == "stopping"
    final = runner.wait(run_id, timeout=30)
    assert final.status == "cancelled" and "killed by SIGKILL" in final.error
    assert not any(is_alive(pid, started) for pid, started in tree)  # the rank in its own session too


def test_a_worker_that_dies_without_a_word_leaves_the_run_interrupted(runner, repo):
    runner.stand_in("import sys; sys.exit(3)")
    run_id = runner.submit(TrainConfig(dataset_id=runner.dataset_id, template=LstmTemplate(vocab_size=100)))
    runner.start()
    final = runner.wait(run_id, timeout=30)
    assert final.status == "interrupted" and "exit code 3" in final.error and "train.log" in final.error
    runner.resume(run_id)  # and Resume takes it back into the queue
    assert runner.wait(run_id, timeout=30).status == "interrupted"
