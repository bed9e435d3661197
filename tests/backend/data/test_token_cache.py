"""The per-dataset token cache: keys, damaged entries, the size cap, and removal with its dataset."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import numpy as np
import pytest

from backend.data import token_cache
from backend.data.store import IngestOptions, delete_dataset, ingest
from backend.data.token_cache import cache_folder, cached_arrays, entry_key, source_fingerprint, tokenizer_fingerprint
from backend.tasks.text_classification.tokenization import load_tokenizer_file, train_tokenizer
from tests.backend.training_fixtures import rule_dataset, rule_rows

OPTIONS = {"tokenizer": "abc", "max_length": 32}


class Builder:
    """A build() that counts its calls and returns fixed arrays."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"ids": np.arange(10, dtype=np.int32), "offsets": np.array([0, 4, 10], dtype=np.int64)}


@pytest.fixture
def dataset(tmp_path):
    return rule_dataset(tmp_path / "data", train_rows=20, validation_rows=10)


def _same(left: dict, right: dict) -> bool:
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) and left[k].dtype == right[k].dtype
                                               for k in left)


def test_second_call_reads_the_entry_back_without_building(dataset):
    build = Builder()
    first = cached_arrays(dataset, "train", OPTIONS, build)
    second = cached_arrays(dataset, "train", OPTIONS, build)
    assert build.calls == 1 and _same(first, second)
    entries = list(cache_folder(dataset).iterdir())
    assert [p.suffix for p in entries] == [".safetensors"]  # no temporary file left behind


@pytest.mark.parametrize("change", [
    dict(split="validation"), dict(options={**OPTIONS, "max_length": 64}),
    dict(options={**OPTIONS, "tokenizer": "xyz"}), dict(content_hash="f" * 64)], ids=["split", "max_length", "tokenizer", "dataset"])
def test_anything_that_changes_the_ids_misses(dataset, change):
    build = Builder()
    cached_arrays(dataset, "train", OPTIONS, build)
    other = replace(dataset, content_hash=change.get("content_hash", dataset.content_hash))
    cached_arrays(other, change.get("split", "train"), change.get("options", OPTIONS), build)
    assert build.calls == 2


def test_no_options_means_no_cache(dataset):
    build = Builder()
    cached_arrays(dataset, "train", None, build)
    cached_arrays(dataset, "train", None, build)
    assert build.calls == 2 and not cache_folder(dataset).exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_damaged_entry_is_logged_removed_and_rebuilt(dataset, caplog, damage):
    build = Builder()
    expected = cached_arrays(dataset, "train", OPTIONS, build)
    path = cache_folder(dataset) / (entry_key(dataset, "train", OPTIONS) + ".safetensors")
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) - 7], "flip": data[:-1] + bytes([data[-1] ^ 0xFF]),
               "garbage": b"\xff" * 64, "empty": b""}[damage]
    path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="backend.data.token_cache"):
        again = cached_arrays(dataset, "train", OPTIONS, build)
    assert build.calls == 2 and _same(again, expected)
    assert "damaged token cache entry" in caplog.text
    assert cached_arrays(dataset, "train", OPTIONS, build) and build.calls == 2  # the rebuilt entry is good


def test_an_unwritable_folder_only_logs(dataset, caplog, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")
    monkeypatch.setattr(token_cache.tempfile, "mkstemp", refuse)
    build = Builder()
    with caplog.at_level(logging.WARNING, logger="backend.data.token_cache"):
        arrays = cached_arrays(dataset, "train", OPTIONS, build)
    assert build.calls == 1 and len(arrays["ids"]) == 10 and "could not write" in caplog.text


def test_the_least_recently_used_entries_go_past_the_cap(dataset, monkeypatch):
    monkeypatch.setattr(token_cache, "MAX_ENTRIES", 3)
    build = Builder()
    for length in range(5):
        cached_arrays(dataset, "train", {**OPTIONS, "max_length": length}, build)
        path = cache_folder(dataset) / (entry_key(dataset, "train", {**OPTIONS, "max_length": length}) + ".safetensors")
        os.utime(path, (1000 + length, 1000 + length))  # distinct ages, whatever the clock's resolution
    cached_arrays(dataset, "train", {**OPTIONS, "max_length": 0}, build)  # gone: built again, now the newest
    assert build.calls == 6
    names = {p.name for p in cache_folder(dataset).iterdir()}
    kept = {entry_key(dataset, "train", {**OPTIONS, "max_length": n}) + ".safetensors" for n in (0, 3, 4)}
    assert names == kept


def test_the_byte_cap_keeps_the_entry_just_written(dataset, monkeypatch):
    monkeypatch.setattr(token_cache, "MAX_BYTES", 10)  # smaller than any entry
    build = Builder()
    cached_arrays(dataset, "train", OPTIONS, build)
    cached_arrays(dataset, "validation", OPTIONS, build)
    assert [p.name for p in cache_folder(dataset).iterdir()] == [entry_key(dataset, "validation", OPTIONS)
                                                                 + ".safetensors"]


def test_fingerprint_names_the_tokenizer_exactly(tmp_path):
    texts = [text for text, _ in rule_rows(200, seed=1)]
    trained = train_tokenizer(texts, "wordpiece", 100, 32)
    trained.save_pretrained(str(tmp_path))
    reloaded = load_tokenizer_file(str(tmp_path / "tokenizer.json"), 32)
    assert tokenizer_fingerprint(trained) == tokenizer_fingerprint(reloaded)  # a resume finds the same entry
    before = tokenizer_fingerprint(trained)
    trained(texts[:3], truncation=True, max_length=5)  # a call sets truncation on the backend
    assert tokenizer_fingerprint(trained) == before
    assert tokenizer_fingerprint(train_tokenizer(texts, "wordpiece", 90, 32)) != before
    assert tokenizer_fingerprint(train_tokenizer(texts, "bpe", 100, 32)) != before
    assert tokenizer_fingerprint(object()) is None  # no tokenizers backend: nothing exact to hash


def test_deleting_a_dataset_removes_its_cache(shared_data, settings, repo):
    record = ingest(shared_data / "sst2" / "dev.csv", IngestOptions(), settings=settings, repo=repo).dataset
    cached_arrays(record, "train", OPTIONS, Builder())
    folder = cache_folder(record)
    assert folder.is_dir() and folder.parent == settings.datasets_dir.resolve() / record.content_hash[:16]
    delete_dataset(repo, record.id)
    assert not folder.exists()


def test_code_without_source_is_fingerprinted_by_its_bytecode():
    one, two = {}, {}
    exec("def encode(x):\n    return x + 1", one)  # no file behind it: inspect.getsource fails
    exec("def encode(x):\n    return x + 2", two)
    assert source_fingerprint(one["encode"]) != source_fingerprint(two["encode"])
    assert source_fingerprint(one["encode"]) == source_fingerprint(one["encode"])
