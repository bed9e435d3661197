"""Many threads writing one SQLite file at once: no "database is locked", no lost rows."""

import threading

import pytest

from storage.repository import NotFound

THREADS = 8
WRITES = 200


@pytest.mark.slow
def test_concurrent_writers_never_see_database_is_locked(repo, add_dataset, make_config):
    dataset = add_dataset()
    run_ids = [repo.create_run(make_config(dataset.id)) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 2)  # writers, the reader, this thread

    def write(index):
        run_id = run_ids[index % 2]
        try:
            start.wait()
            for step in range(WRITES):
                repo.add_metrics(run_id, step, {f"loss_{index}": float(step)})
                if step % 40 == 0:  # read-then-write transactions: the ones a deferred BEGIN breaks
                    repo.heartbeat(run_id, progress=step / WRITES)
                    repo.rename_dataset(dataset.id, f"renamed by {index}")
                    repo.mark_running(run_id, f"/tmp/runs/{run_id}")
        except BaseException as exc:  # collected and asserted in the main thread
            errors.append(exc)

    def read():
        try:
            start.wait()
            while any(thread.is_alive() for thread in writers):
                repo.latest_metrics(run_ids[0])
                repo.list_runs()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(THREADS)]
    reader = threading.Thread(target=read)
    for thread in [*writers, reader]:
        thread.start()
    start.wait()
    for thread in [*writers, reader]:
        thread.join(timeout=60)
    assert errors == []
    rows = repo.get_metrics(run_ids[0]) + repo.get_metrics(run_ids[1])
    assert len(rows) == THREADS * WRITES
    for index in range(THREADS):
        steps = [m.step for m in rows if m.key == f"loss_{index}"]
        assert steps == list(range(WRITES))  # every write landed, in order


def test_writing_to_a_deleted_run_raises_not_found(repo, run_id):
    repo.delete_run(run_id)  # e.g. deleted from the UI while a job still reports progress
    with pytest.raises(NotFound, match=f"Run {run_id} does not exist"):
        repo.add_metrics(run_id, 1, {"loss": 1.0})
    with pytest.raises(NotFound, match=f"Run {run_id} does not exist"):
        repo.add_artifact(run_id, "model", "/tmp/model")
