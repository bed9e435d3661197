"""Truthful state without launching anything: pid + start time on this host, heartbeat elsewhere;
the launch command and the GPU sets the queue hands out."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import text

from backend.config import TrainConfig
from backend.jobs.launch import GpuPool, concurrent_runs, plan_launch
from backend.jobs.liveness import sweep
from backend.jobs.processes import is_alive, start_time, this_host
from backend.settings import Settings
from backend.tasks.text_classification.configs import LstmTemplate
from storage.models import utcnow


@pytest.fixture
def database_url(each_database_url):
    return each_database_url


@pytest.fixture
def running(repo, tmp_path):
    """Factory: a `running` run owned by (pid, started, host)."""
    dataset = repo.add_dataset(name="toy", task="text-classification", content_hash="abc", path=str(tmp_path),
                               text_column="text", label_column="label", rows=10, train_rows=9, validation_rows=1,
                               labels=["a", "b"], classes={"a": 5, "b": 5}, report={})

    def make(pid, started, host=None):
        run_id = repo.create_run(TrainConfig(dataset_id=dataset.id, template=LstmTemplate(vocab_size=100)))
        assert repo.claim(run_id, str(tmp_path / str(run_id)), pid=pid, started=started, host=host or this_host())
        return run_id

    return make


def ended_process() -> tuple[int, float]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(child.pid)
    child.wait()
    return child.pid, started


def test_a_run_whose_process_ended_is_interrupted_and_a_live_one_is_not(repo, running):
    dead_pid, dead_started = ended_process()
    live = running(os.getpid(), start_time(os.getpid()))
    dead = running(dead_pid, dead_started)
    assert sweep(repo, heartbeat_timeout_s=60) == [dead]
    assert repo.get_run(live).status == "running"
    gone = repo.get_run(dead)
    assert gone.status == "interrupted" and f"pid {dead_pid}" in gone.error and "Resume" in gone.error


def test_a_reused_pid_is_not_mistaken_for_the_runs_process(repo, running):
    # Our own pid is alive, but it started long after the recorded process did: another process now.
    reused = running(os.getpid(), start_time(os.getpid()) - 3600)
    assert sweep(repo, heartbeat_timeout_s=60) == [reused]


def test_a_run_on_another_host_is_judged_by_its_heartbeat(repo, running):
    fresh = running(12345, 1.0, host="other-machine")
    stale = running(12345, 1.0, host="other-machine")
    with repo._sessions.begin() as session:
        session.execute(text("UPDATE runs SET heartbeat_at = :aged WHERE id = :id"),
                        {"aged": utcnow() - timedelta(seconds=120), "id": stale})
    assert sweep(repo, heartbeat_timeout_s=60) == [stale]
    assert repo.get_run(fresh).status == "running"
    assert "other-machine" in repo.get_run(stale).error


def test_is_alive_reads_the_start_time():
    assert is_alive(os.getpid(), start_time(os.getpid()))
    assert not is_alive(ended_process()[0], None) and not is_alive(None, None)


def test_the_launch_command_gives_each_run_its_gpus_and_port(tmp_path):
    settings = Settings(home=tmp_path, _env_file=None, launcher="process")
    two = plan_launch(settings, 7, ("2", "3"), port=29601)
    assert two.env["CUDA_VISIBLE_DEVICES"] == "2,3" and two.num_processes == 2
    assert "--multi_gpu" in two.argv and "--cpu" not in two.argv
    assert two.argv[two.argv.index("--main_process_port") + 1] == "29601"
    assert two.command_line().startswith("CUDA_VISIBLE_DEVICES=2,3 ") and two.argv[-2:] == ["--run-id", "7"]
    one = plan_launch(settings, 8, ("1",), port=29602)
    assert "--multi_gpu" not in one.argv and "--cpu" not in one.argv
    cpu = plan_launch(settings, 9, (), port=29603)
    assert "--cpu" in cpu.argv and "CUDA_VISIBLE_DEVICES" not in cpu.env
    # The worker gets this app's settings, not whatever its environment says (the app may have been
    # given them as arguments, and Accelerate's state is per process: device and precision travel too).
    assert cpu.env["MODELSMITH_HOME"] == str(tmp_path.resolve())
    assert cpu.env["MODELSMITH_DATABASE_URL"] == settings.resolved_database_url
    assert (cpu.env["MODELSMITH_DEVICE"], cpu.env["MODELSMITH_MIXED_PRECISION"]) == (settings.device,
                                                                                   settings.mixed_precision)


def test_a_run_gets_the_gpus_it_asked_for_or_waits_for_them(tmp_path):
    from backend.errors import UserError
    from backend.jobs.launch import parse_gpu_request

    gpus = ("0", "1", "2")
    assert parse_gpu_request(None, gpus) is None and parse_gpu_request("all", gpus) == 3
    assert parse_gpu_request("one", gpus) == 1 and parse_gpu_request("2, 0", gpus) == ("2", "0")
    for bad, reason in (("7", "GPU 7 is not one this app may use"), ("0,x", "GPU x is not"),
                        (",", "is not one this app may use")):
        with pytest.raises(UserError, match=reason):
            parse_gpu_request(bad, gpus)
    with pytest.raises(UserError, match="trains on the CPU"):
        parse_gpu_request("all", ())
    pool = GpuPool(gpus, per_run=1)
    assert pool.take("1,2") == ("1", "2")
    assert pool.take("all") is None and pool.take("2") is None  # busy: the run waits in the queue
    assert pool.take("one") == ("0",) and pool.take() is None
    pool.give_back(("1", "2"))
    pool.give_back(("0",))
    assert sorted(pool.take("all")) == ["0", "1", "2"]


def test_a_run_over_several_machines_gets_accelerates_machine_arguments(tmp_path):
    settings = Settings(home=tmp_path, _env_file=None, launcher="process", machines=3, main_process_ip="10.0.0.5")
    main = plan_launch(settings, 7, ("0", "1"), port=29601)
    words = main.argv
    # --num_processes counts every process of every machine; each machine starts its own share.
    assert words[words.index("--num_processes") + 1] == "6" and words[words.index("--num_machines") + 1] == "3"
    assert words[words.index("--machine_rank") + 1] == "0" and words[words.index("--main_process_ip") + 1] == "10.0.0.5"
    assert "--multi_gpu" in words and main.num_processes == 2
    joined = plan_launch(settings, 7, ("0", "1"), port=29601, machine_rank=2, main_ip="10.0.0.5")
    assert joined.argv[joined.argv.index("--machine_rank") + 1] == "2"
    assert joined.argv[joined.argv.index("--main_process_port") + 1] == "29601"
    single = plan_launch(Settings(home=tmp_path, _env_file=None, launcher="process"), 8, (), port=29602)
    assert "--machine_rank" not in single.argv and "--main_process_ip" not in single.argv
    with pytest.raises(ValueError, match="MODELSMITH_LAUNCHER=process"):
        Settings(home=tmp_path, _env_file=None, launcher="thread", machines=2)


def test_joining_a_run_that_is_not_multi_machine_or_over_says_what_to_do(repo, settings):
    from backend.errors import UserError
    from backend.jobs.join import join_run

    dataset = repo.add_dataset(name="toy", task="text-classification", content_hash="abc", path=str(settings.home),
                               text_column="text", label_column="label", rows=10, train_rows=9, validation_rows=1,
                               labels=["a", "b"], classes={"a": 5, "b": 5}, report={})
    run_id = repo.create_run(TrainConfig(dataset_id=dataset.id, template=LstmTemplate(vocab_size=100)))
    with pytest.raises(UserError, match="has not been launched as a multi-machine run within 0 s"):
        join_run(repo, settings, run_id, 1, timeout_s=0)
    repo.cancel_queued(run_id)
    with pytest.raises(UserError, match="is cancelled: there is nothing to join"):
        join_run(repo, settings, run_id, 1, timeout_s=5)


def test_the_queue_hands_out_disjoint_gpu_sets_one_run_per_gpu_by_default(tmp_path):
    settings = Settings(home=tmp_path, _env_file=None, launcher="process")
    gpus = ("0", "1", "2", "3")
    assert concurrent_runs(settings, gpus) == 4 and concurrent_runs(settings, ()) == 1
    pool = GpuPool(gpus, per_run=2)
    first, second = pool.take(), pool.take()
    assert set(first).isdisjoint(second) and pool.take() is None
    pool.give_back(first)
    assert pool.take() == first
    assert GpuPool((), per_run=1).take() == ()  # the CPU: no GPUs to wait for
    assert concurrent_runs(Settings(home=tmp_path, _env_file=None, launcher="thread"), gpus) == 1
