"""Repository metrics (append-only, ordered by step, latest per key) and artifacts."""

from datetime import datetime, timedelta, timezone

import numpy as np

from storage.records import ArtifactRecord, MetricRecord


def test_add_metrics_writes_one_row_per_key(repo, run_id):
    repo.add_metrics(run_id, 10, {"train_loss": 0.9, "learning_rate": 1e-3, "epoch": np.float32(0.5)})
    rows = repo.get_metrics(run_id)
    assert all(type(m) is MetricRecord for m in rows)
    assert {(m.key, m.step, m.value) for m in rows} == {("train_loss", 10, 0.9), ("learning_rate", 10, 1e-3),
                                                        ("epoch", 10, 0.5)}
    assert len({m.time for m in rows}) == 1  # one transaction, one timestamp
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert abs(now - rows[0].time) < timedelta(seconds=5)
    repo.add_metrics(run_id, 11, {})  # nothing to write is not an error
    assert len(repo.get_metrics(run_id)) == 3


def test_get_metrics_orders_by_step_and_filters_keys(repo, run_id):
    repo.add_metrics(run_id, 20, {"train_loss": 0.5})
    repo.add_metrics(run_id, 10, {"train_loss": 0.9, "learning_rate": 1e-3})
    repo.add_metrics(run_id, 20, {"eval_loss": 0.6})
    assert [(m.step, m.key) for m in repo.get_metrics(run_id)] == [
        (10, "train_loss"), (10, "learning_rate"), (20, "train_loss"), (20, "eval_loss")]
    assert [(m.step, m.value) for m in repo.get_metrics(run_id, ["train_loss"])] == [(10, 0.9), (20, 0.5)]
    assert {m.key for m in repo.get_metrics(run_id, ["eval_loss", "learning_rate"])} == {"eval_loss",
                                                                                        "learning_rate"}
    assert repo.get_metrics(run_id, ["nope"]) == []


def test_latest_metrics_takes_the_highest_step_then_the_last_write(repo, run_id):
    assert repo.latest_metrics(run_id) == {}
    repo.add_metrics(run_id, 20, {"train_loss": 0.5})
    repo.add_metrics(run_id, 10, {"train_loss": 0.9, "learning_rate": 1e-3})  # late, but an older step
    repo.add_metrics(run_id, 20, {"eval_loss": 0.6})
    repo.add_metrics(run_id, 20, {"eval_loss": 0.55})  # same step again: the later write wins
    assert repo.latest_metrics(run_id) == {"train_loss": 0.5, "learning_rate": 1e-3, "eval_loss": 0.55}


def test_metrics_of_runs_stay_apart(repo, make_config, run_id):
    other = repo.create_run(make_config(repo.get_run(run_id).dataset_id))
    repo.add_metrics(run_id, 1, {"train_loss": 1.0})
    repo.add_metrics(other, 1, {"train_loss": 2.0})
    assert [m.value for m in repo.get_metrics(other)] == [2.0]
    assert repo.latest_metrics(run_id) == {"train_loss": 1.0}


def test_artifacts_are_listed_oldest_first(repo, run_id):
    assert repo.list_artifacts(run_id) == []
    repo.add_artifact(run_id, "checkpoint", "/tmp/runs/1/checkpoints/step-10")
    repo.add_artifact(run_id, "model", "/tmp/runs/1")
    artifacts = repo.list_artifacts(run_id)
    assert all(type(a) is ArtifactRecord for a in artifacts)
    assert [(a.run_id, a.kind, a.path) for a in artifacts] == [
        (run_id, "checkpoint", "/tmp/runs/1/checkpoints/step-10"), (run_id, "model", "/tmp/runs/1")]
    assert artifacts[0].id < artifacts[1].id and artifacts[0].created_at is not None


def test_non_finite_values_are_left_out_on_every_database(repo, run_id):
    # A diverging loss: SQLite turned NaN into NULL and refused the row (reported as a missing run),
    # PostgreSQL stored it. Both now keep the finite values of the step and drop the rest.
    repo.add_metrics(run_id, 1, {"train_loss": float("nan"), "grad_norm": float("inf"), "progress": 0.5})
    repo.add_metrics(run_id, 2, {"train_loss": float("-inf")})
    assert [(m.key, m.step, m.value) for m in repo.get_metrics(run_id)] == [("progress", 1, 0.5)]
    assert repo.latest_metrics(run_id) == {"progress": 0.5}
