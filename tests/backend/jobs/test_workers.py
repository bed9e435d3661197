"""Runs in `accelerate launch` worker processes, end to end on the CPU: truthful state after kill -9,
a killed supervisor, Stop, resume, two runs at once, 2 processes (gloo) against 1, and the app's SIGTERM.

Each launch starts Python with torch twice (the launcher, then the worker: several seconds on a
2-core machine), so the runs are tiny (a few dozen rows, a 32-wide LSTM), and one launched run
serves every check that concerns the same run: one run goes through kill -9, a killed supervisor,
Stop and three resumes. The signal handling runs on SQLite only (liveness and the runner's state
changes have cheap tests on both databases in test_liveness.py and test_runner.py); the test where
two workers write to one store at once runs on SQLite and, on CI, PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from backend.jobs.processes import descendants, is_alive
from backend.jobs.runner import JobRunner, has_checkpoint
from backend.settings import Settings
from tests.backend.training_fixtures import lstm_config, rule_rows, make_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
LAUNCH_TIMEOUT_S = 240  # a launch on a loaded 2-core machine: Python + torch twice (launcher, worker)


def process_settings(settings: Settings, **overrides) -> Settings:
    """The test's settings with worker processes, one CPU process per run unless overridden."""
    values = dict(home=settings.home, database_url=settings.database_url, launcher="process", device="cpu",
                  stop_grace_s=60, cpu_processes_per_run=1,
                  cpu_threads_per_process=1)  # tiny models on a shared CPU: one thread is fastest
    return Settings(**{**values, **overrides}, _env_file=None)


@pytest.fixture
def dataset_id(repo, settings):
    """A few dozen rows of the good/bad rule, stored like an upload."""
    folder = settings.datasets_dir / "rule"
    record = make_dataset(folder, rule_rows(64, seed=1), rule_rows(16, seed=2))
    stored = repo.add_dataset(name="rule", task="text-classification", content_hash="r" * 64, path=str(folder),
                              text_column="text", label_column="label", rows=record.rows,
                              train_rows=record.train_rows, validation_rows=record.validation_rows,
                              labels=record.labels, classes=record.classes, report={})
    return stored.id


def slow_config(dataset_id: int, **overrides):
    """Long enough (a checkpoint every epoch, a metric row every step) to be stopped or killed mid-way."""
    values = dict(dataset_id=dataset_id, epochs=40, log_every_steps=1, batch_size=16)
    return lstm_config(**{**values, **overrides})


def wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def cli(settings: Settings, *args: str, timeout: float = LAUNCH_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args, "--json"], cwd=ROOT, env=cli_env(settings),
                          capture_output=True, text=True, timeout=timeout)


def cli_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "MODELSMITH_HOME": str(settings.home), "MODELSMITH_DATABASE_URL": settings.database_url,
            "MODELSMITH_LAUNCHER": "process", "MODELSMITH_DEVICE": "cpu",
            "MODELSMITH_CPU_THREADS_PER_PROCESS": "1"}


def unique_metric_rows(repo, run_id) -> bool:
    """No step was trained (and reported) twice: one training loss and one evaluation per step at most.

    (`progress`/`epoch` come with both reports of an epoch's last step, so only these keys are unique.)"""
    for key in ("train_loss", "eval_macro_f1"):
        steps = [m.step for m in repo.get_metrics(run_id, [key])]
        if len(steps) != len(set(steps)):
            return False
    return True


def latest_step(output_dir: Path) -> int:
    """The step of the run's latest complete checkpoint (0: none yet)."""
    from backend.training.checkpoints import checkpoint_step, latest_checkpoint

    found = latest_checkpoint(output_dir)
    return checkpoint_step(found) if found is not None else 0


def run_tree(run) -> list[tuple[int, float | None]]:
    """(pid, start time) of the run's launcher and every process below it."""
    return [(run.worker_pid, run.worker_started), *descendants(run.worker_pid)]


def background_cli(settings: Settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "app.py", *args, "--json"], cwd=ROOT, env=cli_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def relaunched(repo, run_id: int, output_dir: Path, *, past_step: int, not_by: set[int]):
    """Wait until a new worker of the run (its launcher not in `not_by`) saved a checkpoint past `past_step`."""
    def ready():
        run = repo.get_run(run_id)
        return (run.status == "running" and run.worker_port and run.worker_pid not in not_by
                and latest_step(output_dir) > past_step and run)

    return wait_for(ready, LAUNCH_TIMEOUT_S, f"a new worker's checkpoint past step {past_step}")


def test_one_run_through_kill_9_a_killed_supervisor_and_stop_resumes_each_time_and_succeeds(
        repo, settings, dataset_id):
    """One launched run serves four checks in turn, each ending resumable: kill -9 of its worker with no
    supervisor (readers say `interrupted` within 5 s), kill -9 of its supervisor (the worker checkpoints
    and stops itself), Stop (every process gone, `cancelled`), and a last resume that succeeds."""
    settings = process_settings(settings)
    config = slow_config(dataset_id, epochs=20)
    overrides = [f"--set={key}={value}" for key, value in (
        ("epochs", config.epochs), ("log_every_steps", 1), ("batch_size", 16), ("learning_rate", 5e-3),
        ("max_length", 32), ("vocab_size", 120), ("embedding_dim", 32), ("hidden_size", 32), ("seed", 7))]

    # 1. kill -9 of the worker (what the OOM killer does) after its supervisor died: no server, no
    #    supervisor, so only the readers can tell.
    trainer = background_cli(settings, "train", "--dataset", str(dataset_id), "--template", "lstm", *overrides)
    workers: list[int] = []
    try:
        run = wait_for(lambda: next((r for r in repo.list_runs() if r.worker_port), None), LAUNCH_TIMEOUT_S,
                       "the worker to be launched")
        output_dir = Path(run.output_dir)
        wait_for(lambda: latest_step(output_dir), LAUNCH_TIMEOUT_S, "the first checkpoint")
        run = repo.get_run(run.id)
        assert run.status == "running" and run.worker_pid != trainer.pid
        workers = [pid for pid, _ in descendants(run.worker_pid)]
        assert workers, "the launcher has started the worker"
        for pid in workers:  # frozen, it cannot notice its supervisor go (part 2) and stop cleanly
            os.kill(pid, signal.SIGSTOP)
        trainer.kill()
        trainer.wait()
        os.kill(workers[-1], signal.SIGKILL)
        killed_at = time.monotonic()
        # Ask until `runs --json` says interrupted; the call that says it must have begun within 5 s
        # of the kill (its own Python start-up, slow on a busy machine, is the reader's, not the state's).
        asked_at, listed = 0.0, None
        while listed is None and time.monotonic() - killed_at < 30:
            asked_at = time.monotonic() - killed_at
            listed = next((r for r in json.loads(cli(settings, "runs").stdout)
                           if r["run_id"] == run.id and r["status"] == "interrupted"), None)
        assert listed is not None and asked_at <= 5.0, f"asked {asked_at:.1f} s after the kill"
        assert "pid" in listed["error"] and "Resume" in listed["error"]
        assert repo.get_run(run.id).status == "interrupted"
    finally:
        trainer.kill()
        for pid in workers:
            if is_alive(pid, None):
                os.kill(pid, signal.SIGKILL)

    # 2. kill -9 of the supervisor (`python app.py resume`): its worker must not train on alone.
    last = latest_step(output_dir)
    resumer = background_cli(settings, "resume", "--run", str(run.id))
    try:
        second = relaunched(repo, run.id, output_dir, past_step=last, not_by={resumer.pid, run.worker_pid})
        tree = run_tree(second)
        resumer.kill()
        resumer.wait()
        ended = wait_for(lambda: (r := repo.get_run(run.id)).status != "running" and r, 60,
                         "the worker to notice that its supervisor is gone")
        assert ended.status == "interrupted" and "supervised this run was killed" in ended.error, ended.error
        wait_for(lambda: not any(is_alive(pid, started) for pid, started in tree), 30, "the processes to end")
        assert "saved a checkpoint and stopped" in (output_dir / "train.log").read_text()
    finally:
        resumer.kill()

    # 3. Stop from this process's runner: SIGTERM, a checkpoint, `cancelled`, no process left.
    runner = JobRunner(repo, settings)
    runner.start()
    try:
        last = latest_step(output_dir)
        runner.resume(run.id)
        third = relaunched(repo, run.id, output_dir, past_step=last, not_by={os.getpid(), second.worker_pid})
        tree = run_tree(third)
        assert len(tree) >= 2  # the launcher and the worker
        assert runner.stop(run.id) == "stopping"
        stopped = runner.wait(run.id, timeout=60)
        assert stopped.status == "cancelled", stopped.error
        wait_for(lambda: not any(is_alive(pid, started) for pid, started in tree), 10, "the processes to end")
        # The launcher was reaped, not left a zombie (reaping can lag a moment on a loaded machine:
        # CI at load ~4.6 once found the pid still there right after the processes had ended).
        wait_for(lambda: not psutil.pid_exists(third.worker_pid), 10, "the launcher to be reaped")
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(third.worker_pid).status()
        last_step = max(m.step for m in repo.get_metrics(run.id))

        # 4. The last resume trains the rest.
        runner.resume(run.id)
        final = runner.wait(run.id, timeout=LAUNCH_TIMEOUT_S)
    finally:
        runner.shutdown()
    assert final.status == "succeeded" and final.metrics["macro_f1"] > 0.5, final.error
    assert max(m.step for m in repo.get_metrics(run.id)) > last_step
    assert unique_metric_rows(repo, run.id)
    assert (Path(final.output_dir) / "model.safetensors").is_file()
    assert "run cancelled" in (output_dir / "train.log").read_text()


@pytest.fixture
def two_at_once_database(request):
    """SQLite, then (where a server is set) PostgreSQL: two workers write to one shared store at once."""
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres_database_url")


@pytest.mark.parametrize("two_at_once_database", ["sqlite", "postgresql"], indirect=True)
def test_two_runs_train_at_once_and_their_metrics_do_not_mix(two_at_once_database, tmp_path):
    from storage.database import make_engine, make_sessions, migrate
    from storage.repository import Repository

    settings = Settings(home=tmp_path / "home", database_url=two_at_once_database, launcher="process", device="cpu",
                        max_concurrent_jobs=2, cpu_threads_per_process=1, _env_file=None)
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    repo = Repository(make_sessions(engine))
    folder = settings.datasets_dir / "rule"
    record = make_dataset(folder, rule_rows(64, seed=1), rule_rows(16, seed=2))
    dataset_id = repo.add_dataset(name="rule", task="text-classification", content_hash="r" * 64, path=str(folder),
                                  text_column="text", label_column="label", rows=record.rows,
                                  train_rows=record.train_rows, validation_rows=record.validation_rows,
                                  labels=record.labels, classes=record.classes, report={}).id
    runner = JobRunner(repo, settings)
    # Different lengths (4 steps an epoch): each run's metrics must carry its own step count.
    run_ids = {runner.submit(lstm_config(dataset_id=dataset_id, epochs=epochs, name=f"e{epochs}", log_every_steps=1)):
               epochs * 4 for epochs in (3, 5)}
    runner.start()
    overlapped = False
    try:
        deadline = time.monotonic() + 2 * LAUNCH_TIMEOUT_S
        while time.monotonic() < deadline:
            runs = [repo.get_run(run_id) for run_id in run_ids]
            overlapped |= all(run.status == "running" and run.worker_port for run in runs)
            if all(run.status not in ("queued", "running") for run in runs):
                break
            time.sleep(0.2)
    finally:
        runner.shutdown()
    assert overlapped, "both runs had a worker at the same time"
    ports = set()
    for run_id, total_steps in run_ids.items():
        run = repo.get_run(run_id)
        assert run.status == "succeeded", run.error
        ports.add(run.worker_port)
        assert {m.value for m in repo.get_metrics(run_id, ["total_steps"])} == {total_steps}
        assert [m.step for m in repo.get_metrics(run_id, ["train_loss"])] == list(range(1, total_steps + 1))
        assert json.loads((Path(run.output_dir) / "metrics.json").read_text())["macro_f1"] == run.metrics["macro_f1"]
    assert len(ports) == 2  # each run its own rendezvous port
    engine.dispose()


def test_a_run_over_two_machines_on_loopback_succeeds_and_only_rank_0_of_machine_0_writes(repo, settings,
                                                                                          dataset_id):
    """Two "machines" on this one (one CPU process each, gloo over 127.0.0.1): machine 0 is this
    test's runner (as the app or `python app.py train --nodes 2` would be), machine 1 joins the run
    as `python app.py join --run ID --machine-rank 1` does, from the shared store and home folder."""
    from backend.jobs.join import join_run

    runner = JobRunner(repo, process_settings(settings, machines=2, main_process_ip="127.0.0.1"))
    run_id = runner.submit(lstm_config(dataset_id=dataset_id, epochs=3, log_every_steps=1))
    joined: dict[str, int] = {}
    joiner = threading.Thread(target=lambda: joined.update(
        code=join_run(repo, process_settings(settings), run_id, 1, timeout_s=LAUNCH_TIMEOUT_S)))
    joiner.start()
    final = runner.run_job(run_id)
    joiner.join(LAUNCH_TIMEOUT_S)
    assert final.status == "succeeded", final.error
    assert joined.get("code") == 0
    output_dir = Path(final.output_dir)
    main_log, joined_log = (output_dir / "train.log").read_text(), (output_dir / "train-machine1.log").read_text()
    assert "--num_machines 2 --machine_rank 0 --main_process_ip 127.0.0.1" in main_log
    assert "rank 0 of 2" in main_log and "rank 1 of 2" in joined_log
    # 64 rows, batches of 16 shared by 2 processes: 2 optimizer steps an epoch, each stored once, by rank 0.
    assert [m.step for m in repo.get_metrics(run_id, ["train_loss"])] == list(range(1, 7))
    assert unique_metric_rows(repo, run_id) and "step 1:" not in joined_log
    assert (output_dir / "model.safetensors").is_file()


MATCH_TOLERANCE = 0.1  # macro F1 of 2 processes within 0.1 of 1 process (both must learn the rule: >= 0.9)


def test_two_cpu_processes_over_gloo_reach_the_metrics_of_one_even_after_sigkill_of_a_rank_and_resume(
        repo, settings):
    """2 processes (gloo) against 1 on the same data and config. The 2-process run also loses its rank 1
    to SIGKILL after its first checkpoint: the run ends `interrupted`, and its resume finishes it to
    the validation metrics of 1 process."""
    folder = settings.datasets_dir / "rule-160"
    record = make_dataset(folder, rule_rows(160, seed=1), rule_rows(40, seed=2))
    dataset_id = repo.add_dataset(name="rule", task="text-classification", content_hash="s" * 64, path=str(folder),
                                  text_column="text", label_column="label", rows=record.rows,
                                  train_rows=record.train_rows, validation_rows=record.validation_rows,
                                  labels=record.labels, classes=record.classes, report={}).id
    # In a worker too: in this (pytest) process torch's threads fight everything else on a busy machine.
    single = JobRunner(repo, process_settings(settings))
    one = single.run_job(single.submit(lstm_config(dataset_id=dataset_id, epochs=12, name="1 process")))
    assert one.status == "succeeded", one.error

    runner = JobRunner(repo, process_settings(settings, cpu_processes_per_run=2))
    run_id = runner.submit(lstm_config(dataset_id=dataset_id, epochs=12, name="2 processes"))
    output_dir = settings.runs_dir / str(run_id)
    runner.start()
    try:
        wait_for(lambda: latest_step(output_dir) and repo.get_run(run_id).worker_port, LAUNCH_TIMEOUT_S,
                 "the first checkpoint")
        workers = [psutil.Process(pid) for pid, _ in descendants(repo.get_run(run_id).worker_pid)]
        ranks = {process.environ()["RANK"]: process.pid for process in workers if "RANK" in process.environ()}
        assert set(ranks) == {"0", "1"}
        os.kill(ranks["1"], signal.SIGKILL)
        interrupted = runner.wait(run_id, timeout=120)
        assert interrupted.status == "interrupted", interrupted.error
        wait_for(lambda: not any(is_alive(pid, None) for pid in ranks.values()), 60, "rank 0 to end too")
        runner.resume(run_id)
        two = runner.wait(run_id, timeout=LAUNCH_TIMEOUT_S)
    finally:
        runner.shutdown()
    assert two.status == "succeeded", two.error
    log_text = (output_dir / "train.log").read_text()
    assert "rank 1 of 2" in log_text and "--multi_gpu" in log_text  # really two processes, talking gloo
    assert "resumed from" in log_text and unique_metric_rows(repo, run_id)
    # Each of 2 processes takes half the batches: half the optimizer steps, same samples seen.
    steps = {n: repo.get_metrics(run.id, ["total_steps"])[-1].value for n, run in ((1, one), (2, two))}
    assert steps[2] == steps[1] / 2
    assert one.metrics["macro_f1"] >= 0.9 and two.metrics["macro_f1"] >= 0.9, (one.metrics, two.metrics)
    assert abs(one.metrics["macro_f1"] - two.metrics["macro_f1"]) <= MATCH_TOLERANCE
    assert sorted(p.name for p in Path(two.output_dir).iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in Path(one.output_dir).iterdir() if not p.name.startswith("."))  # rank 0 alone wrote them


def test_sigterm_to_the_serving_app_checkpoints_its_worker_run_and_ends_it_interrupted(repo, settings, dataset_id,
                                                                                        tmp_path):
    """`docker stop` of an app whose runs train in worker processes: the worker saves a checkpoint,
    the run ends `interrupted` (resumable), the app exits 0 and leaves no process of the run behind."""
    from tests.reliability.support import AppProcess, free_port

    run_id = JobRunner(repo, process_settings(settings)).submit(slow_config(dataset_id))
    app = AppProcess(settings.home, free_port(), tmp_path / "work", env={
        "MODELSMITH_LAUNCHER": "process", "MODELSMITH_DEVICE": "cpu", "MODELSMITH_CPU_THREADS_PER_PROCESS": "1",
        "MODELSMITH_DATABASE_URL": settings.database_url}).start()
    try:
        wait_for(lambda: repo.get_metrics(run_id, ["train_loss"]) and repo.get_run(run_id).worker_port,
                 LAUNCH_TIMEOUT_S, "the worker's first steps")
        run = repo.get_run(run_id)
        tree = [(run.worker_pid, run.worker_started), *descendants(run.worker_pid)]
        app.signal(signal.SIGTERM)
        code = app.wait_exit(120)
    finally:
        app.stop()
    assert code == 0, app.log_tail()
    final = repo.get_run(run_id)
    assert final.status == "interrupted", (final.status, final.error, app.log_tail())
    assert has_checkpoint(Path(final.output_dir)) and "run interrupted" in (Path(final.output_dir) / "train.log").read_text()
    assert not any(is_alive(pid, started) for pid, started in tree)
