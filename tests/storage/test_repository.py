"""Repository: plain records, readable errors, FIFO queue, metrics, cascades, SQLite pragmas."""

import dataclasses
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from backend.config import LstmTemplate, TrainConfig
from storage.records import DatasetRecord, RunRecord
from storage.repository import InUse, NotFound


def add_dataset(repo, content_hash="h1", name="toy"):
    return repo.add_dataset(name=name, task="text-classification", content_hash=content_hash, path="/tmp/x",
                            text_column="text", label_column="label", rows=10, train_rows=9, validation_rows=1,
                            labels=["neg", "pos"], classes={"neg": 5, "pos": 5}, report={"rows": 10})


def config(dataset_id, name=""):
    return TrainConfig(dataset_id=dataset_id, name=name, template=LstmTemplate(hidden_size=16))


def test_dataset_crud_returns_plain_records(repo):
    record = add_dataset(repo)
    assert isinstance(record, DatasetRecord) and dataclasses.is_dataclass(record)
    assert record.labels == ["neg", "pos"] and record.classes == {"neg": 5, "pos": 5}
    assert repo.find_dataset_by_hash("h1") == record
    assert repo.find_dataset_by_hash("nope") is None
    repo.rename_dataset(record.id, "  renamed ")
    assert repo.get_dataset(record.id).name == "renamed"
    second = add_dataset(repo, "h2", "other")
    assert [d.id for d in repo.list_datasets()] == [second.id, record.id]
    repo.delete_dataset(second.id)
    with pytest.raises(NotFound, match=f"Dataset {second.id} does not exist"):
        repo.get_dataset(second.id)


def test_dataset_used_by_a_run_cannot_be_deleted(repo):
    record = add_dataset(repo)
    run_id = repo.create_run(config(record.id))
    with pytest.raises(InUse, match=f"used by run\\(s\\) {run_id}"):
        repo.delete_dataset(record.id)
    assert repo.get_dataset(record.id).id == record.id


def test_run_lifecycle(repo):
    dataset = add_dataset(repo)
    run_id = repo.create_run(config(dataset.id))
    run = repo.get_run(run_id)
    assert isinstance(run, RunRecord)
    assert (run.status, run.template, run.task, run.name) == ("queued", "lstm", "text-classification", f"lstm-{run_id}")
    assert run.config.template.hidden_size == 16
    repo.mark_running(run_id, "/tmp/out")
    repo.heartbeat(run_id, progress=0.5)
    run = repo.get_run(run_id)
    assert run.status == "running" and run.started_at and run.heartbeat_at and run.progress == 0.5
    repo.finish(run_id, "succeeded", metrics={"macro_f1": 0.9})
    run = repo.get_run(run_id)
    assert run.status == "succeeded" and run.finished_at and run.metrics == {"macro_f1": 0.9} and run.progress == 1.0
    with pytest.raises(ValueError):
        repo.finish(run_id, "running")
    with pytest.raises(NotFound, match="Run 999 does not exist"):
        repo.get_run(999)


def test_queue_is_fifo_and_filters_by_status(repo):
    dataset = add_dataset(repo)
    ids = [repo.create_run(config(dataset.id, f"r{i}")) for i in range(3)]
    assert [r.id for r in repo.queued_runs()] == ids
    assert repo.count_queued() == 3
    repo.finish(ids[1], "cancelled")
    assert [r.id for r in repo.queued_runs()] == [ids[0], ids[2]]
    assert [r.id for r in repo.list_runs("cancelled")] == [ids[1]]
    assert [r.id for r in repo.list_runs()] == ids[::-1]
    repo.requeue(ids[1], config(dataset.id, "again"))
    assert repo.get_run(ids[1]).status == "queued" and repo.get_run(ids[1]).config.name == "again"


def test_mark_interrupted_stale(repo, settings):
    dataset = add_dataset(repo)
    fresh, stale = repo.create_run(config(dataset.id)), repo.create_run(config(dataset.id))
    for run_id in (fresh, stale):
        repo.mark_running(run_id, "/tmp/out")
    with repo._sessions.begin() as session:  # age one heartbeat by ten minutes
        session.execute(text("UPDATE runs SET heartbeat_at = datetime(heartbeat_at, '-600 seconds') WHERE id = :i"),
                        {"i": stale})
    assert repo.mark_interrupted_stale(timedelta(seconds=60)) == [stale]
    assert repo.get_run(stale).status == "interrupted" and "Resume" in repo.get_run(stale).error
    assert repo.get_run(fresh).status == "running"
    assert repo.mark_interrupted_stale() == [fresh]


def test_metrics_are_ordered_and_cascade_with_the_run(repo):
    dataset = add_dataset(repo)
    run_id = repo.create_run(config(dataset.id))
    repo.add_metrics(run_id, 20, {"train_loss": 0.5})
    repo.add_metrics(run_id, 10, {"train_loss": 0.9, "learning_rate": 1e-3})
    repo.add_metrics(run_id, 20, {"eval_loss": 0.6})
    assert [(m.step, m.value) for m in repo.get_metrics(run_id, ["train_loss"])] == [(10, 0.9), (20, 0.5)]
    assert repo.latest_metrics(run_id) == {"train_loss": 0.5, "learning_rate": 1e-3, "eval_loss": 0.6}
    repo.add_artifact(run_id, "model", "/tmp/out")
    assert [a.kind for a in repo.list_artifacts(run_id)] == ["model"]
    repo.delete_run(run_id)
    assert repo.get_metrics(run_id) == [] and repo.list_artifacts(run_id) == []


def test_sqlite_pragmas_are_on(repo):
    with repo._sessions() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_concurrent_writers_never_see_database_is_locked(repo):
    dataset = add_dataset(repo)
    run_id = repo.create_run(config(dataset.id))
    errors: list[Exception] = []

    def write(thread_index):
        try:
            for step in range(200):
                repo.add_metrics(run_id, step, {f"t{thread_index}": float(step)})
                if step % 50 == 0:
                    repo.heartbeat(run_id, progress=step / 200)
                    repo.list_runs()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(repo.get_metrics(run_id)) == 8 * 200
