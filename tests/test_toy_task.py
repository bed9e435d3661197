"""A task registered only here ("text-regression", tests/toy_task/) trains, predicts and shows in the
Train tab, with no file outside its package changed: the registry line is `TASKS[...] = TASK`."""

from __future__ import annotations

import csv
import random

import pytest

from tests.toy_task.task import TASK


@pytest.fixture
def toy_registered(monkeypatch):
    from backend.tasks.registry import TASKS

    monkeypatch.setitem(TASKS, TASK.name, TASK)  # the one registry line, undone after the test
    return TASK


@pytest.fixture
def services(settings):
    from backend.services import build_services

    services = build_services(settings)
    yield services
    services.close()


def _numbers_csv(path, rows=120):
    """Texts whose number is their word count: a linear rule of the two features."""
    rng = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "value"])
        for _ in range(rows):
            words = rng.randint(1, 12)
            writer.writerow([" ".join("w" * rng.randint(1, 6) for _ in range(words)), words])
    return path


def test_a_registered_task_trains_through_the_runner_and_predicts(toy_registered, services, tmp_path):
    from backend.config import TrainConfig, default_config
    from backend.data.store import IngestOptions
    from tests.toy_task.training import load_regressor

    options = IngestOptions(task=TASK.name, text_column="sentence", label_column="value", validation_fraction=0.2)
    dataset = services.ingest(_numbers_csv(tmp_path / "numbers.csv"), options).dataset
    assert dataset.task == TASK.name
    config = default_config(dataset.id, "toy-linear", TASK.name)
    assert config.epochs == 30 and config.learning_rate == 0.05  # the task's training defaults
    assert TrainConfig.model_validate_json(config.model_dump_json()) == config  # stored and read back

    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 120)
    assert run.status == "succeeded", run.error
    assert run.task == TASK.name and run.template == "toy-linear"
    losses = [m.value for m in services.get_metrics(run_id, ["train_loss"])]
    assert losses[-1] < losses[0] / 2  # it learned
    assert (services.get_run(run_id).metrics or {})["mse"] < losses[0]
    readme = (tmp_path / "home").rglob("README.md")
    assert any("Validation MSE" in p.read_text(encoding="utf-8") for p in readme)  # the task's own card

    regressor = load_regressor(run.output_dir)
    predictions = regressor.predict(["a b c d e f g h", "word"])
    assert predictions[0] > predictions[1] + 3  # eight words against one


def test_a_registered_task_reloads_to_the_in_memory_model(toy_registered, settings, tmp_path):
    from backend.config import default_config
    from backend.data.store import IngestOptions, ingest
    from backend.services import build_services
    from backend.training.run import train
    from tests.toy_task.training import load_regressor

    services = build_services(settings)
    try:
        options = IngestOptions(task=TASK.name, text_column="sentence", label_column="value")
        dataset = ingest(_numbers_csv(tmp_path / "n.csv"), options, settings=settings, repo=services.repo).dataset
    finally:
        services.close()
    config = default_config(dataset.id, "toy-linear", TASK.name)
    result = train(config, dataset, tmp_path / "run", on_progress=lambda step, values: None,
                   should_stop=lambda: False, settings=settings)
    texts = ["one two three", "a", "x y z w v u t s r q"]
    assert result.predictor.predict(texts) == pytest.approx(load_regressor(tmp_path / "run").predict(texts))
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "checkpoints").exists()


def test_a_registered_task_shows_in_the_train_tab(toy_registered, services):
    import gradio as gr

    from ui import train_tab

    assert (TASK.label, TASK.name) in train_tab.task_choices()
    template_update, *_ = train_tab.on_task_change(TASK.name, "lstm")
    assert template_update["choices"] == [("toy-linear", "toy-linear")] and template_update["value"] == "toy-linear"
    with gr.Blocks():
        form = train_tab.build_train_tab(services)
    assert (TASK.label, TASK.name) in form.task.choices
    assert ("toy-linear", "scale") in train_tab.form_fields()  # its settings are in the form


def test_an_unregistered_task_is_refused_with_the_known_ones():
    from pydantic import ValidationError

    from backend.config import TrainConfig

    with pytest.raises(ValidationError, match="unknown task 'text-regression'"):
        TrainConfig(dataset_id=1, task="text-regression", template={"kind": "lstm"})
