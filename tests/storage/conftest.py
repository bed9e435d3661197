"""Storage fixtures: every test runs on SQLite and on PostgreSQL; dataset and config factories."""

import pytest

from backend.config import TrainConfig

from backend.tasks.text_classification.configs import LstmTemplate


@pytest.fixture
def database_url(each_database_url):
    """Each storage test runs twice: on the SQLite file, then on a fresh PostgreSQL database."""
    return each_database_url


@pytest.fixture
def dialect(database_url) -> str:
    """'sqlite' or 'postgresql': the database this variant of the test runs on."""
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def add_dataset(repo):
    """Factory: store a tiny dataset's metadata; each call needs its own content hash."""

    def add(content_hash: str = "hash-1", name: str = "toy", **overrides):
        fields = dict(name=name, task="text-classification", content_hash=content_hash, path="/tmp/toy",
                      text_column="text", label_column="label", rows=10, train_rows=9, validation_rows=1,
                      labels=["neg", "pos"], classes={"neg": 5, "pos": 5}, report={"rows": 10, "warnings": []})
        fields.update(overrides)
        return repo.add_dataset(**fields)

    return add


@pytest.fixture
def make_config():
    """Factory: a valid LSTM TrainConfig for a dataset id."""

    def make(dataset_id: int, name: str = "", **overrides) -> TrainConfig:
        return TrainConfig(dataset_id=dataset_id, name=name, template=LstmTemplate(hidden_size=16), **overrides)

    return make


@pytest.fixture
def run_id(repo, add_dataset, make_config):
    """A queued run on a stored dataset."""
    return repo.create_run(make_config(add_dataset().id))
