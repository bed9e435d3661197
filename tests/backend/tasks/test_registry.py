"""The registry: every task is complete and consistent, and each of its functions can be found."""

from __future__ import annotations

import importlib
import typing

import pytest

from backend.config import TrainConfig, default_config, template_classes, templates_of
from backend.tasks.base import Entry, Panel, Task, has_architecture, template_kind
from backend.tasks.registry import DEFAULT_TASK, TASKS, get_task, task_of_template

ENTRY_FIELDS = ("prepare", "train", "estimate", "load_model", "render_card")


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_consistent(name):
    task = TASKS[name]
    assert task.name == name and task.label and task.upload_label and task.model_noun
    assert task.default_template in task.template_kinds
    assert set(task.training_defaults) <= set(task.template_kinds)
    assert task.panel in typing.get_args(Panel)
    for kind in task.template_kinds:
        # Two tasks may share a template (tabular classification and regression fit the same three);
        # a kind alone then means the first task that offers it.
        owner = task_of_template(kind)
        assert owner is task or template_classes()[kind] in owner.templates
        config = default_config(1, kind, name)
        assert config.task == name and TrainConfig.model_validate_json(config.model_dump_json()) == config


@pytest.mark.parametrize("name", list(TASKS))
def test_every_entry_of_a_task_names_a_function_that_exists(name):
    task = TASKS[name]
    for field in ENTRY_FIELDS:
        entry = getattr(task, field)
        assert isinstance(entry, Entry), field
        module, _, function = entry.path.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), entry.path
    optional = [getattr(task, field) for field in ("load_predictor", "predict_rows", "predict_table", "input_form")]
    for entry in (entry for entry in optional if entry is not None):
        module, _, function = entry.path.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), entry.path
    # Every task predicts somehow: a predictor of its model folder, or rows of a table.
    assert task.load_predictor is not None or task.predict_rows is not None, name


def test_a_template_kind_names_one_template_class():
    """Tasks may share a template class, but never use one kind for two different classes."""
    classes = {t for task in TASKS.values() for t in task.templates}
    assert len({template_kind(t) for t in classes}) == len(classes) == len(template_classes())


def test_a_template_of_another_task_is_refused():
    lm_kind = templates_of("text-generation")[0]
    with pytest.raises(ValueError, match="does not do text-classification"):
        TrainConfig(dataset_id=1, task="text-classification", template={"kind": lm_kind})


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'nope'; pick one of text-classification, text-generation"):
        get_task("nope")
    with pytest.raises(ValueError, match="unknown template 'nope'"):
        task_of_template("nope")
    assert DEFAULT_TASK in TASKS


def _bare_task(**fields) -> Task:
    """A task that states only the fields without a default."""
    entry = Entry("backend.tasks.text_classification.card:render_card")
    return Task(name="text-regression", label="Text regression", upload_label="text → number", model_noun="regressor",
                templates=(), default_template="", panel="classify", prepare=entry, train=entry, estimate=entry,
                load_model=entry, render_card=entry, **fields)


def test_a_task_states_only_what_differs_from_the_defaults():
    task = _bare_task()
    assert task.pipeline_tag == "text-regression"  # no tag given: the task's name
    assert (task.best_metric, task.higher_is_better, task.quality_range) == ("macro_f1", True, (0, 1))
    assert task.needs_label_column and not task.uses_max_length and not task.exports_labels
    assert task.infer_settings({"architectures": ["BertForSequenceClassification"]}, "base") is None
    assert task.load_predictor is None and task.predict_rows is None
    other = _bare_task(pipeline_tag="text-classification", quality_curves={"eval_mse": "MSE"})
    assert other.pipeline_tag == "text-classification" and other.quality_curves == {"eval_mse": "MSE"}
    assert task.quality_curves is not _bare_task().quality_curves  # each task its own chart mapping


def test_the_registered_tasks_keep_their_pipeline_tags_and_curves():
    """The defaults changed how tasks are written, not what they say."""
    assert {name: task.pipeline_tag for name, task in TASKS.items()} == {name: name for name in TASKS}
    assert TASKS["text-classification"].quality_curves == TASKS["image-classification"].quality_curves == {
        "eval_accuracy": "accuracy", "eval_macro_f1": "macro F1", "eval_macro_precision": "macro precision",
        "eval_macro_recall": "macro recall"}
    assert [name for name, task in TASKS.items() if task.exports_labels] == ["text-classification",
                                                                             "image-classification"]


def test_has_architecture_reads_config_json():
    assert has_architecture({"architectures": ["GPT2LMHeadModel"]}, "ForCausalLM", "LMHeadModel")
    assert not has_architecture({"architectures": ["BertModel"]}, "ForSequenceClassification")
    assert not has_architecture({"architectures": None}, "ForSequenceClassification")
    assert not has_architecture({}, "ForImageClassification")
