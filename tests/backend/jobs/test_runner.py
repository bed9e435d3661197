"""JobRunner with a fake, fast train function: queue order, stop, failure, recovery, shutdown.

Every test that touches the database runs on the SQLite file and on PostgreSQL.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import LstmTemplate
from backend.errors import Cancelled, UserError
from backend.jobs.runner import JobRunner, explain


@dataclass
class FakeResult:
    metrics: dict


class FakeTrainer:
    """Steps through `steps` fake optimizer steps, honouring should_stop like the real trainer."""

    def __init__(self, steps=5, step_seconds=0.01, fail_on=None):
        self.steps, self.step_seconds, self.fail_on = steps, step_seconds, fail_on or {}
        self.started: list[int] = []
        self.active = 0
        self.max_active = 0
        self.resumed: list[bool] = []
        self._lock = threading.Lock()

    def __call__(self, config, dataset, output_dir, *, on_progress, should_stop, resume=False):
        with self._lock:
            self.started.append(int(output_dir.name))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.resumed.append(resume)
        try:
            if config.name in self.fail_on:
                raise self.fail_on[config.name]
            for step in range(1, self.steps + 1):
                if should_stop():
                    (output_dir / "checkpoints" / f"step-{step}").mkdir(parents=True, exist_ok=True)
                    raise Cancelled()
                time.sleep(self.step_seconds)
                on_progress(step, {"train_loss": 1.0 / step, "progress": step / self.steps})
            return FakeResult(metrics={"accuracy": 1.0, "macro_f1": 1.0})
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def database_url(each_database_url):
    """The runner's queue, progress and recovery on the SQLite file, then on a fresh PostgreSQL database."""
    return each_database_url


@pytest.fixture
def dataset_id(repo, tmp_path):
    record = repo.add_dataset(name="toy", task="text-classification", content_hash="abc", path=str(tmp_path),
                              text_column="text", label_column="label", rows=10, train_rows=9,
                              validation_rows=1, labels=["a", "b"], classes={"a": 5, "b": 5}, report={})
    return record.id


def config(dataset_id, name=""):
    return TrainConfig(dataset_id=dataset_id, name=name, template=LstmTemplate(vocab_size=100))


def test_five_queued_jobs_run_fifo_one_at_a_time(repo, settings, dataset_id):
    fake = FakeTrainer(steps=3, step_seconds=0.02)
    runner = JobRunner(repo, settings, train_fn=fake)
    run_ids = [runner.submit(config(dataset_id, f"job{i}")) for i in range(5)]
    assert runner.queue_length() == 5
    runner.start()
    try:
        finals = [runner.wait(run_id, timeout=30) for run_id in run_ids]
    finally:
        runner.shutdown()
    assert [run.status for run in finals] == ["succeeded"] * 5
    assert fake.started == run_ids
    assert fake.max_active == 1
    assert finals[0].metrics["macro_f1"] == 1.0
    steps = [m.step for m in repo.get_metrics(run_ids[0], ["train_loss"])]
    assert steps == [1, 2, 3]
    assert repo.get_run(run_ids[0]).progress == pytest.approx(1.0)


def test_cancel_queued_run_removes_it_from_queue(repo, settings, dataset_id):
    runner = JobRunner(repo, settings, train_fn=FakeTrainer())
    run_id = runner.submit(config(dataset_id))
    assert runner.stop(run_id) == "cancelled"
    assert repo.get_run(run_id).status == "cancelled"
    assert runner.queue_length() == 0


def test_stop_running_run_ends_cancelled_and_can_resume(repo, settings, dataset_id):
    fake = FakeTrainer(steps=500, step_seconds=0.01)
    runner = JobRunner(repo, settings, train_fn=fake)
    run_id = runner.submit(config(dataset_id))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not repo.get_metrics(run_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runner.stop(run_id) == "stopping"
        run = runner.wait(run_id, timeout=10)
        assert run.status == "cancelled"
        last_step = max(m.step for m in repo.get_metrics(run_id))
        assert last_step < 500
        fake.steps = 3
        runner.resume(run_id)
        assert runner.wait(run_id, timeout=10).status == "succeeded"
    finally:
        runner.shutdown()
    assert fake.resumed == [False, True]  # the second attempt found the checkpoint


def test_failing_job_is_reported_and_worker_takes_next(repo, settings, dataset_id):
    fake = FakeTrainer(fail_on={"bad": RuntimeError("boom"), "oom": RuntimeError("CUDA out of memory. Tried")})
    runner = JobRunner(repo, settings, train_fn=fake)
    bad, oom, good = (runner.submit(config(dataset_id, n)) for n in ("bad", "oom", "good"))
    runner.start()
    try:
        assert runner.wait(bad, 10).status == "failed"
        assert runner.wait(oom, 10).status == "failed"
        assert runner.wait(good, 10).status == "succeeded"
    finally:
        runner.shutdown()
    assert "boom" in repo.get_run(bad).error and "RuntimeError" in repo.get_run(bad).error
    assert "batch size" in repo.get_run(oom).error


def test_resume_refuses_runs_that_are_not_resumable(repo, settings, dataset_id):
    runner = JobRunner(repo, settings, train_fn=FakeTrainer())
    run_id = runner.submit(config(dataset_id))
    with pytest.raises(UserError, match="only interrupted or cancelled"):
        runner.resume(run_id)


def test_submit_refuses_dataset_of_other_task(repo, settings, tmp_path):
    record = repo.add_dataset(name="corpus", task="text-generation", content_hash="gen", path=str(tmp_path),
                              text_column="text", label_column=None, rows=1, train_rows=1, validation_rows=1,
                              labels=[], classes={}, report={})
    runner = JobRunner(repo, settings, train_fn=FakeTrainer())
    with pytest.raises(UserError, match="text-generation"):
        runner.submit(config(record.id))


def test_recovery_marks_orphaned_running_runs_interrupted(repo, settings, dataset_id):
    runner = JobRunner(repo, settings, train_fn=FakeTrainer(steps=2))
    orphan = runner.submit(config(dataset_id, "orphan"))
    waiting = runner.submit(config(dataset_id, "waiting"))
    repo.mark_running(orphan, str(settings.runs_dir / str(orphan)))
    # a CLI process only takes runs with a stale heartbeat: this one beat just now
    assert runner.recover(all_running=False) == []
    assert runner.recover(all_running=True) == [orphan]
    assert repo.get_run(orphan).status == "interrupted"
    assert repo.get_run(waiting).status == "queued"


def test_app_start_sweeps_only_dead_runs_of_a_shared_database(repo, settings, dataset_id, database_url):
    from backend.services import build_services

    services = build_services(settings, train_fn=FakeTrainer())
    try:
        live, dead = (services.runner.submit(config(dataset_id, name)) for name in ("live", "dead"))
        for run_id in (live, dead):
            repo.mark_running(run_id, str(settings.runs_dir / str(run_id)))
        aged = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=settings.heartbeat_timeout_s + 5)
        with repo._sessions.begin() as session:  # `dead` stopped beating; `live` beat just now
            session.execute(text("UPDATE runs SET heartbeat_at = :aged WHERE id = :id"), {"aged": aged, "id": dead})
        swept = services.recover_at_start()
    finally:
        services.close()
    if database_url:  # PostgreSQL: `live` may be training on another machine
        assert services.shares_database and swept == [dead]
        assert repo.get_run(live).status == "running"
    else:  # the app owns its SQLite file: nothing else can be training
        assert not services.shares_database and swept == [live, dead]
        assert repo.get_run(live).status == "interrupted"
    assert repo.get_run(dead).status == "interrupted"


def test_shutdown_interrupts_running_job(repo, settings, dataset_id):
    fake = FakeTrainer(steps=10_000, step_seconds=0.01)
    runner = JobRunner(repo, settings, train_fn=fake)
    run_id = runner.submit(config(dataset_id))
    runner.start()
    deadline = time.monotonic() + 10
    while repo.get_run(run_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    runner.shutdown()
    run = repo.get_run(run_id)
    assert run.status == "interrupted"
    assert (settings.runs_dir / str(run_id) / "checkpoints").is_dir()


def test_explain_names_the_fix():
    assert "Lower the batch size" in explain(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert explain(UserError("Column 'x' is missing.")) == "Column 'x' is missing."
    assert explain(ValueError("bad\nmore")).startswith("Training failed (ValueError): bad")


def test_the_default_trainer_gets_the_runners_settings_not_the_environments(repo, settings, dataset_id, monkeypatch):
    """The runner's Settings (device, precision) reach the trainer; a fresh Settings() would read the
    environment, which here asks for another device."""
    import backend.training.run as training_run

    monkeypatch.setenv("MODELSMITH_DEVICE", "mps")  # what Settings() from the environment would pick
    seen = []

    def train(config, dataset, output_dir, *, on_progress, should_stop, resume=False, settings=None):
        seen.append(settings)
        return FakeResult(metrics={"macro_f1": 1.0})

    monkeypatch.setattr(training_run, "train", train)
    runner = JobRunner(repo, settings)  # no train_fn: the real entry point, backend.training.run.train
    run_id = runner.submit(config(dataset_id))
    runner.start()
    try:
        assert runner.wait(run_id, 30).status == "succeeded"
    finally:
        runner.shutdown()
    assert seen == [settings] and seen[0].device != "mps"


class CheckpointingTrainer:
    """Saves a (state-only) checkpoint every 3 steps like the real trainer, resumes from the latest,
    and is stopped after step 5 the first time: steps 4-5 are reported twice in all."""

    def __init__(self, steps=8):
        self.steps = steps
        self.stop_after = 5

    def __call__(self, config, dataset, output_dir, *, on_progress, should_stop, resume=False):
        import json

        from backend.training.checkpoints import checkpoint_step, latest_checkpoint

        checkpoint = latest_checkpoint(output_dir) if resume else None
        start = checkpoint_step(checkpoint) if checkpoint is not None else 0
        for step in range(start + 1, self.steps + 1):
            on_progress(step, {"train_loss": 1.0 / step, "progress": step / self.steps})
            if step % 3 == 0:
                folder = output_dir / "checkpoints" / f"step-{step:08d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
            if step == self.stop_after:
                self.stop_after = None
                raise Cancelled()
        return FakeResult(metrics={"macro_f1": 1.0})


def test_resume_replaces_the_metric_rows_past_the_checkpoint(repo, settings, dataset_id):
    runner = JobRunner(repo, settings, train_fn=CheckpointingTrainer())
    run_id = runner.submit(config(dataset_id))
    assert runner.run_job(run_id).status == "cancelled"
    assert [m.step for m in repo.get_metrics(run_id, ["train_loss"])] == [1, 2, 3, 4, 5]
    runner.resume(run_id)
    assert runner.run_job(run_id).status == "succeeded"
    rows = [(m.step, m.key) for m in repo.get_metrics(run_id)]
    assert len(rows) == len(set(rows)) == 16  # 8 steps x (train_loss, progress), none twice
    assert [m.step for m in repo.get_metrics(run_id, ["train_loss"])] == list(range(1, 9))


def test_delete_metrics_after_keeps_the_steps_up_to_the_checkpoint(repo, settings, dataset_id):
    run_id = repo.create_run(config(dataset_id))
    for step in (5, 6, 7, 8):
        repo.add_metrics(run_id, step, {"loss": 1.0 / step, "accuracy": step / 10})
    assert repo.delete_metrics_after(run_id, 6) == 4
    assert sorted({m.step for m in repo.get_metrics(run_id)}) == [5, 6] and len(repo.get_metrics(run_id)) == 4


def test_a_run_waiting_for_the_trainer_shows_queued_until_it_starts(repo, settings, dataset_id):
    fake = FakeTrainer(steps=40, step_seconds=0.02)
    runner = JobRunner(repo, settings, train_fn=fake)
    first, second = runner.submit(config(dataset_id, "a")), runner.submit(config(dataset_id, "b"))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not repo.get_metrics(first) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (repo.get_run(first).status, repo.get_run(second).status) == ("running", "queued")
        assert runner.wait(second, timeout=20).status == "succeeded"
    finally:
        runner.shutdown()
    assert fake.max_active == 1 and fake.started == [first, second]
