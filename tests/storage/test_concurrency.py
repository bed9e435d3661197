"""Many threads, and several processes, writing one database at once: no "database is locked", no lost rows.

Each test runs on the SQLite file and on PostgreSQL (tests/storage/conftest.py).
"""

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from storage.repository import NotFound
from tests.conftest import PROJECT_ROOT

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


PROCESSES = 3
PROCESS_WRITES = 60
# One training process's reporting: a metric row per step, the heartbeat and progress on its run,
# and the sweep for dead runs that every process does (a read-then-write over all running runs).
WRITER = """
import sys
from datetime import timedelta
from storage.database import make_engine, make_sessions
from storage.repository import Repository
index, url, run_id, writes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
repo = Repository(make_sessions(make_engine(url)))
for step in range(writes):
    repo.add_metrics(run_id, step, {f"loss_{index}": float(step)})
    repo.heartbeat(run_id, progress=step / writes)
    if step % 10 == 0:
        repo.mark_interrupted_stale(timedelta(hours=1))
"""


@pytest.mark.slow  # starts 3 Python processes
def test_several_processes_write_progress_to_one_database(repo, settings, run_id):
    repo.mark_running(run_id, "/tmp/runs/shared")
    url = settings.resolved_database_url
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(index), url, str(run_id),
                                  str(PROCESS_WRITES)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for index in range(PROCESSES)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [(child.returncode, output[-1500:]) for child, output in zip(children, outputs)] == [(0, "")] * PROCESSES
    rows = repo.get_metrics(run_id)
    for index in range(PROCESSES):
        assert [m.step for m in rows if m.key == f"loss_{index}"] == list(range(PROCESS_WRITES))
    run = repo.get_run(run_id)
    assert run.status == "running"  # the heartbeats were fresh: no process swept a live run
    assert run.progress == pytest.approx((PROCESS_WRITES - 1) / PROCESS_WRITES)


CLAIMER = """
import json, sys
from storage.database import make_engine, make_sessions
from storage.repository import Repository
index, url, run_ids = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
repo = Repository(make_sessions(make_engine(url)))
print(json.dumps([run_id for run_id in run_ids if repo.claim(run_id, f"/tmp/runs/{run_id}")]))
"""


@pytest.mark.slow  # starts 3 Python processes
def test_processes_sharing_the_queue_claim_each_run_exactly_once(repo, settings, add_dataset, make_config):
    dataset = add_dataset()
    run_ids = [repo.create_run(make_config(dataset.id)) for _ in range(20)]
    arguments = [settings.resolved_database_url, json.dumps(run_ids)]
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(CLAIMER), str(index), *arguments],
                                 cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for index in range(PROCESSES)]
    results = [child.communicate(timeout=120) for child in children]
    assert [(child.returncode, err[-1500:]) for child, (_, err) in zip(children, results)] == [(0, "")] * PROCESSES
    claimed = [run_id for out, _ in results for run_id in json.loads(out)]
    assert sorted(claimed) == run_ids  # every run taken once: none twice, none left behind
    assert {run.status for run in repo.list_runs()} == {"running"}
