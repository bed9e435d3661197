"""Repository runs: create, lifecycle, FIFO queue, requeue, stale recovery, delete with cascade."""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import TransformerTemplate
from storage.records import RunRecord
from storage.repository import NotFound


def _age_heartbeat(repo, run_id, seconds):
    # Date arithmetic in Python: SQLite's datetime() and PostgreSQL's interval arithmetic differ.
    aged = repo.get_run(run_id).heartbeat_at - timedelta(seconds=seconds)
    with repo._sessions.begin() as session:
        session.execute(text("UPDATE runs SET heartbeat_at = :aged WHERE id = :id"), {"aged": aged, "id": run_id})


def test_create_run_derives_columns_from_the_config(repo, add_dataset, make_config):
    dataset = add_dataset()
    config = make_config(dataset.id, epochs=2)
    run_id = repo.create_run(config)
    run = repo.get_run(run_id)
    assert type(run) is RunRecord and not hasattr(run, "_sa_instance_state")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "running"
    assert (run.id, run.dataset_id, run.task, run.template) == (run_id, dataset.id, "text-classification", "lstm")
    assert (run.status, run.name, run.progress, run.metrics, run.error) == ("queued", f"lstm-{run_id}", 0.0, {}, None)
    assert run.started_at is None and run.finished_at is None and run.output_dir is None
    assert run.config == config  # stored verbatim, read back equal
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert abs(now - run.created_at) < timedelta(seconds=5)


def test_run_name_comes_from_argument_then_config(repo, add_dataset, make_config):
    dataset = add_dataset()
    assert repo.get_run(repo.create_run(make_config(dataset.id, name="baseline"))).name == "baseline"
    assert repo.get_run(repo.create_run(make_config(dataset.id, name="cfg"), name="  given ")).name == "given"


def test_create_run_needs_an_existing_dataset(repo, make_config):
    with pytest.raises(NotFound, match="Dataset 99 does not exist"):
        repo.create_run(make_config(99))
    assert repo.list_runs() == []


def test_lifecycle_running_heartbeat_finish(repo, run_id):
    repo.mark_running(run_id, "/tmp/runs/1")
    run = repo.get_run(run_id)
    assert (run.status, run.output_dir) == ("running", "/tmp/runs/1")
    assert run.started_at is not None and run.heartbeat_at == run.started_at
    repo.heartbeat(run_id, progress=0.25)
    assert repo.get_run(run_id).progress == 0.25 and repo.get_run(run_id).heartbeat_at >= run.heartbeat_at
    repo.heartbeat(run_id, progress=7)  # clamped to 0..1
    assert repo.get_run(run_id).progress == 1.0
    repo.heartbeat(run_id)  # without progress: keeps it
    assert repo.get_run(run_id).progress == 1.0
    repo.finish(run_id, "succeeded", metrics={"macro_f1": 0.9, "labels": ["neg", "pos"]})
    run = repo.get_run(run_id)
    assert run.status == "succeeded" and run.finished_at >= run.started_at and run.error is None
    assert run.metrics == {"macro_f1": 0.9, "labels": ["neg", "pos"]}


def test_finish_failed_keeps_the_error_and_rejects_unknown_statuses(repo, run_id):
    repo.finish(run_id, "failed", error="Out of memory. Lower the batch size.")
    run = repo.get_run(run_id)
    assert (run.status, run.error, run.metrics) == ("failed", "Out of memory. Lower the batch size.", {})
    for bad in ("running", "queued", "done"):
        with pytest.raises(ValueError, match=f"'{bad}' is not a run status here. Use one of: succeeded"):
            repo.finish(run_id, bad)
    assert repo.get_run(run_id).status == "failed"


def test_missing_runs_raise_not_found_with_a_readable_message(repo):
    message = "Run 999 does not exist. Pick one from the runs list."
    calls = [lambda: repo.get_run(999), lambda: repo.mark_running(999, "/x"),
             lambda: repo.finish(999, "cancelled"), lambda: repo.requeue(999), lambda: repo.delete_run(999),
             lambda: repo.add_metrics(999, 1, {"loss": 1.0}), lambda: repo.add_artifact(999, "model", "/x")]
    for call in calls:
        with pytest.raises(NotFound) as raised:
            call()
        assert str(raised.value) == message


def test_queued_runs_are_fifo_and_list_runs_newest_first(repo, add_dataset, make_config):
    dataset = add_dataset()
    ids = [repo.create_run(make_config(dataset.id, name=f"r{i}")) for i in range(4)]
    assert [r.id for r in repo.queued_runs()] == ids
    assert repo.count_queued() == 4
    repo.mark_running(ids[0], "/tmp/a")
    repo.finish(ids[2], "cancelled")
    assert [r.id for r in repo.queued_runs()] == [ids[1], ids[3]]
    assert repo.count_queued() == 2
    assert [r.id for r in repo.list_runs()] == ids[::-1]
    assert [r.id for r in repo.list_runs("cancelled")] == [ids[2]]
    assert [r.id for r in repo.list_runs("running")] == [ids[0]]
    assert repo.list_runs("succeeded") == [] and len(repo.list_runs("")) == 4
    with pytest.raises(ValueError, match="'done' is not a run status"):
        repo.list_runs("done")


def test_requeue_clears_the_end_and_may_replace_the_config(repo, add_dataset, make_config):
    dataset = add_dataset()
    run_id = repo.create_run(make_config(dataset.id))
    repo.mark_running(run_id, "/tmp/runs/1")
    repo.finish(run_id, "cancelled", error="stopped")
    repo.requeue(run_id)
    run = repo.get_run(run_id)
    assert (run.status, run.error, run.finished_at, run.output_dir) == ("queued", None, None, "/tmp/runs/1")
    assert run.config == make_config(dataset.id) and [r.id for r in repo.queued_runs()] == [run_id]

    other = add_dataset(content_hash="hash-2")
    new_config = TrainConfig(dataset_id=other.id, template=TransformerTemplate(), epochs=5)
    repo.finish(run_id, "interrupted")
    repo.requeue(run_id, new_config)
    run = repo.get_run(run_id)
    assert run.status == "queued" and run.config == new_config
    assert (run.dataset_id, run.template) == (other.id, "transformer")  # derived columns follow
    with pytest.raises(NotFound, match="Dataset 77 does not exist"):
        repo.requeue(run_id, make_config(77))


def test_mark_interrupted_stale_on_start_up_takes_every_running_run(repo, add_dataset, make_config):
    dataset = add_dataset()
    queued, first, second = (repo.create_run(make_config(dataset.id)) for _ in range(3))
    assert repo.mark_interrupted_stale() == []
    repo.mark_running(first, "/tmp/1")
    repo.mark_running(second, "/tmp/2")
    assert repo.mark_interrupted_stale() == [first, second]
    for run_id in (first, second):
        run = repo.get_run(run_id)
        assert run.status == "interrupted" and run.finished_at is not None and "Resume it" in run.error
    assert repo.get_run(queued).status == "queued"  # the queue survives a restart
    assert repo.mark_interrupted_stale() == []


def test_mark_interrupted_stale_with_an_age_takes_only_silent_runs(repo, add_dataset, make_config):
    dataset = add_dataset()
    fresh, stale = repo.create_run(make_config(dataset.id)), repo.create_run(make_config(dataset.id))
    for run_id in (fresh, stale):
        repo.mark_running(run_id, "/tmp/out")
    _age_heartbeat(repo, stale, 600)
    assert repo.mark_interrupted_stale(timedelta(seconds=60)) == [stale]
    assert repo.get_run(stale).status == "interrupted"
    assert repo.get_run(fresh).status == "running" and repo.get_run(fresh).error is None
    _age_heartbeat(repo, fresh, 120)
    repo.heartbeat(fresh)  # a beat makes it fresh again
    assert repo.mark_interrupted_stale(timedelta(seconds=60)) == []


def test_delete_run_removes_its_metrics_and_artifacts(repo, add_dataset, make_config):
    dataset = add_dataset()
    run_id, keep = repo.create_run(make_config(dataset.id)), repo.create_run(make_config(dataset.id))
    for target in (run_id, keep):
        repo.add_metrics(target, 1, {"train_loss": 1.0, "learning_rate": 0.1})
        repo.add_artifact(target, "model", f"/tmp/runs/{target}")
    repo.delete_run(run_id)
    with pytest.raises(NotFound):
        repo.get_run(run_id)
    assert repo.get_metrics(run_id) == [] and repo.list_artifacts(run_id) == []
    with repo._sessions() as session:  # the rows are gone from the tables, not just filtered
        assert session.execute(text("SELECT count(*) FROM metrics WHERE run_id = :i"), {"i": run_id}).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM artifacts WHERE run_id = :i"), {"i": run_id}).scalar() == 0
    assert len(repo.get_metrics(keep)) == 2 and len(repo.list_artifacts(keep)) == 1


def test_claim_takes_a_queued_run_once(repo, run_id):
    assert repo.claim(run_id, "/tmp/runs/claimed") is True
    run = repo.get_run(run_id)
    assert (run.status, run.output_dir, run.error) == ("running", "/tmp/runs/claimed", None)
    assert run.started_at is not None and run.heartbeat_at == run.started_at
    assert repo.claim(run_id, "/tmp/runs/second") is False  # a second claimant (another process) gets nothing
    assert repo.get_run(run_id).output_dir == "/tmp/runs/claimed"
    repo.finish(run_id, "cancelled")
    repo.requeue(run_id)
    assert repo.claim(run_id, "/tmp/runs/claimed") is True  # resumed: queued again, claimable again
    assert repo.get_run(run_id).started_at == run.started_at  # the first start time is kept
    assert repo.claim(999, "/tmp/runs/none") is False


def test_an_error_or_name_with_a_nul_character_is_stored(repo, add_dataset, make_config):
    # An error message quoting user data must not make the write of the failure fail (PostgreSQL
    # refuses NUL in text), or the run would stay `running` until the heartbeat sweep.
    run_id = repo.create_run(make_config(add_dataset().id, name="nul\x00name"))
    repo.finish(run_id, "failed", error="Column 'a\x00b' is missing.")
    run = repo.get_run(run_id)
    assert (run.name, run.status, run.error) == ("nulname", "failed", "Column 'ab' is missing.")


def test_cancel_queued_loses_to_a_claim_and_a_claim_loses_to_it(repo, add_dataset, make_config):
    dataset = add_dataset()
    first, second = (repo.create_run(make_config(dataset.id)) for _ in range(2))
    assert repo.claim(first, "/tmp/runs/first")  # a worker in another process took it
    assert repo.cancel_queued(first) is False
    assert repo.get_run(first).status == "running"  # not overwritten while it trains
    assert repo.cancel_queued(second) is True
    run = repo.get_run(second)
    assert run.status == "cancelled" and run.finished_at is not None
    assert repo.claim(second, "/tmp/runs/second") is False  # a cancelled run is not trained


@pytest.mark.parametrize("run_id", [2**31, 2**40, 2**63 - 1, -1])
def test_an_id_no_row_can_have_is_simply_not_found(repo, run_id):
    # PostgreSQL's INTEGER ids are 32-bit: 2**31 is "integer out of range" there, not a missing row.
    with pytest.raises(NotFound, match=f"Run {run_id} does not exist"):
        repo.get_run(run_id)
    with pytest.raises(NotFound, match=f"Dataset {run_id} does not exist"):
        repo.get_dataset(run_id)
