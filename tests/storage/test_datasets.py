"""Repository datasets: plain frozen records, lookups by hash, rename, delete, readable errors."""

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from storage.records import DatasetRecord
from storage.repository import InUse, NotFound


def test_add_dataset_returns_a_plain_frozen_record(repo, add_dataset):
    record = add_dataset(report={"rows": 10, "share": np.float32(0.5)})
    assert type(record) is DatasetRecord and not hasattr(record, "_sa_instance_state")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "changed"
    assert (record.task, record.text_column, record.label_column) == ("text-classification", "text", "label")
    assert (record.rows, record.train_rows, record.validation_rows) == (10, 9, 1)
    assert record.labels == ["neg", "pos"] and record.classes == {"neg": 5, "pos": 5}
    assert record.report == {"rows": 10, "share": 0.5}  # numpy values stored as plain JSON numbers
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert record.created_at.tzinfo is None and abs(now - record.created_at) < timedelta(seconds=5)  # naive UTC


def test_get_and_find_by_hash_return_equal_records(repo, add_dataset):
    record = add_dataset(content_hash="abc", label_column=None, labels=[], classes={})
    assert repo.get_dataset(record.id) == record
    assert repo.find_dataset_by_hash("abc") == record
    assert repo.find_dataset_by_hash("missing") is None
    assert repo.get_dataset(record.id).label_column is None


def test_content_hash_is_unique(repo, add_dataset):
    add_dataset(content_hash="same")
    with pytest.raises(IntegrityError):
        add_dataset(content_hash="same", name="again")
    assert [d.name for d in repo.list_datasets()] == ["toy"]  # the failed insert left nothing behind


def test_list_datasets_is_newest_first(repo, add_dataset):
    ids = [add_dataset(content_hash=f"h{i}", name=f"d{i}").id for i in range(3)]
    assert [d.id for d in repo.list_datasets()] == ids[::-1]


def test_rename_dataset_strips_and_refuses_empty_names(repo, add_dataset):
    record = add_dataset()
    repo.rename_dataset(record.id, "  reviews 2024 ")
    assert repo.get_dataset(record.id).name == "reviews 2024"
    with pytest.raises(ValueError, match="cannot be empty"):
        repo.rename_dataset(record.id, "   ")
    with pytest.raises(NotFound, match="Dataset 404 does not exist. Pick one from the list of stored datasets."):
        repo.rename_dataset(404, "x")


def test_delete_dataset(repo, add_dataset):
    record = add_dataset()
    repo.delete_dataset(record.id)
    assert repo.list_datasets() == []
    with pytest.raises(NotFound, match=f"Dataset {record.id} does not exist"):
        repo.get_dataset(record.id)
    with pytest.raises(NotFound, match=f"Dataset {record.id} does not exist"):
        repo.delete_dataset(record.id)


def test_dataset_used_by_runs_cannot_be_deleted(repo, add_dataset, make_config):
    record = add_dataset(name="reviews")
    run_ids = [repo.create_run(make_config(record.id)) for _ in range(2)]
    with pytest.raises(InUse) as raised:
        repo.delete_dataset(record.id)
    message = str(raised.value)
    assert f"Dataset {record.id} ('reviews') is used by run(s) {run_ids[0]}, {run_ids[1]}" in message
    assert "Delete those runs first" in message
    assert repo.get_dataset(record.id) == record
    for run_id in run_ids:
        repo.delete_run(run_id)
    repo.delete_dataset(record.id)  # free once no run refers to it
    assert repo.list_datasets() == []


def test_user_text_that_postgresql_would_refuse_is_stored_cleaned(repo, add_dataset):
    # A NUL in a header or a file name, and a header longer than VARCHAR(200): SQLite keeps both,
    # PostgreSQL refuses the write. The repository stores the same cleaned text on both.
    long_header = "h" * 250
    dataset = add_dataset(name="toy\x00data" + "n" * 300, text_column="te\x00xt", label_column=long_header)
    stored = repo.get_dataset(dataset.id)
    assert stored.name == "toydata" + "n" * 193 and len(stored.name) == 200
    assert (stored.text_column, stored.label_column, stored.target_column) == ("text", "h" * 200, "h" * 200)
    repo.rename_dataset(dataset.id, "  re\x00named  ")
    assert repo.get_dataset(dataset.id).name == "renamed"
