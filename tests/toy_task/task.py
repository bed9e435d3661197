"""The toy task's one object, as backend/tasks/registry.py would list it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.tasks.base import Entry, Task, TemplateConfig


class LinearTemplate(TemplateConfig):
    """A linear regression over the text's length in characters and words."""

    kind: Literal["toy-linear"] = "toy-linear"
    scale: float = Field(10.0, gt=0, description="Characters per feature unit.")


TASK = Task(
    name="text-regression",
    label="Text regression (toy)",
    upload_label="Text regression (text → number)",
    model_noun="regressor",
    templates=(LinearTemplate,),
    default_template="toy-linear",
    panel="classify",
    pipeline_tag="text-classification",
    best_metric="mse",
    best_metric_label="mean squared error",
    higher_is_better=False,
    quality_curves={"eval_mse": "MSE"},
    quality_range=(0, None),
    # The number arrives as the "label" column of a labelled dataset: the classifier's preparation fits.
    prepare=Entry("backend.tasks.text_classification.prepare:prepare_classification"),
    train=Entry("tests.toy_task.training:train_regressor"),
    estimate=Entry("tests.toy_task.training:estimate"),
    load_model=Entry("tests.toy_task.training:load_regressor"),
    render_card=Entry("tests.toy_task.training:render_card"),
    training_defaults={"toy-linear": {"learning_rate": 0.05, "epochs": 30}},
)
