"""Every task Modelsmith offers: adding a task is one package under backend/tasks/ and one line here."""

from __future__ import annotations

from backend.tasks.base import Task, TemplateConfig, template_kind
from backend.tasks.image_classification.task import TASK as IMAGE_CLASSIFICATION
from backend.tasks.tabular.task import CLASSIFICATION as TABULAR_CLASSIFICATION
from backend.tasks.tabular.task import REGRESSION as TABULAR_REGRESSION
from backend.tasks.text_classification.task import TASK as TEXT_CLASSIFICATION
from backend.tasks.text_generation.task import TASK as TEXT_GENERATION

TASKS: dict[str, Task] = {task.name: task for task in (
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
    IMAGE_CLASSIFICATION,
    TABULAR_CLASSIFICATION,
    TABULAR_REGRESSION,
)}
DEFAULT_TASK = TEXT_CLASSIFICATION.name  # what a form, the CLI and a bare TrainConfig start with


def get_task(name: str) -> Task:
    """The task called `name`; ValueError naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task '{name}'; pick one of {', '.join(TASKS)}") from None


def list_tasks() -> list[Task]:
    """Every registered task, in registry order."""
    return list(TASKS.values())


def template_classes() -> dict[str, type[TemplateConfig]]:
    """Every template of every task, by kind."""
    return {template_kind(template): template for task in TASKS.values() for template in task.templates}


def task_of_template(kind: str) -> Task:
    """The task that offers the template `kind`."""
    for task in TASKS.values():
        if kind in task.template_kinds:
            return task
    raise ValueError(f"unknown template '{kind}'; pick one of {', '.join(template_classes())}")
