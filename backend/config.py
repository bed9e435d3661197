"""Typed configs: the contract between the form, the store, the job runner and the trainer.

One `TrainConfig` is built and validated once (by the UI or the CLI), stored verbatim with the
run (`model_dump_json()`), and read back with `model_validate_json` by Resume, Clone and the
Playground. Defaults and help texts live on the fields; the UI form reads them from here.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny, field_validator, model_validator

from backend.errors import UnknownSetting
from backend.tasks.base import TemplateConfig, TrainPreset
from backend.tasks.base import template_description as describe_template
from backend.tasks.registry import DEFAULT_TASK, TASKS, task_of_template, template_classes

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
RUN_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "interrupted")
RESUMABLE_STATUSES: tuple[str, ...] = ("cancelled", "interrupted")


class _Frozen(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}


def template_description(kind: str) -> str:
    """One-line description of a template, for the UI and the CLI."""
    return describe_template(template_classes()[kind])


def templates_of(task: str) -> tuple[str, ...]:
    """The template kinds a task offers; () for an unknown task."""
    return TASKS[task].template_kinds if task in TASKS else ()


def _template_from(value):
    """A template config from its dict (stored JSON, a form), picked by its `kind`."""
    if isinstance(value, dict):
        classes = template_classes()
        kind = value.get("kind")
        if kind not in classes:
            raise ValueError(f"unknown template '{kind}'; pick one of {', '.join(classes)}")
        return classes[kind].model_validate(value)
    return value


class TrainConfig(_Frozen):
    """Everything needed to reproduce one run; stored verbatim with the run."""

    name: str = Field("", max_length=200, description="A name to find the run again; empty picks one.")
    dataset_id: int | None = Field(..., ge=1, description="Stored dataset to train on (None: an imported model, "
                                                         "which has none here).")
    task: str = Field(DEFAULT_TASK, description="What the model learns to do.")
    # Any task's template: picked by `kind` from the registry; SerializeAsAny stores all its fields.
    template: SerializeAsAny[TemplateConfig] = Field(default_factory=lambda: _default_template())
    epochs: int = Field(3, ge=1, le=100, description="Passes over the training data.")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per optimizer step (before accumulation).")
    learning_rate: float = Field(1e-3, gt=0, lt=1, description="Peak learning rate of AdamW; for gbdt, the "
                                                                "shrinkage of each new tree.")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps spent warming up the learning rate.")
    max_length: int = Field(128, ge=8, le=8192, description="Longest text in tokens; longer texts are cut.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024, description="Batches summed per optimizer step.")
    max_grad_norm: float = Field(1.0, ge=0, le=1000, description="Gradient clipping norm; 0 turns it off.")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed for weights, shuffling and dropout (gbdt: trees).")
    eval_every_steps: int = Field(0, ge=0, description="Also evaluate every N optimizer steps; 0 = once per epoch.")
    early_stopping_patience: int = Field(0, ge=0, le=100,
                                         description="Stop after N evaluations without a better validation score "
                                                     "(macro F1; bits/char for text generation); 0 = off.")
    log_every_steps: int = Field(10, ge=1, le=10_000, description="Record training progress every N steps.")
    time_budget_seconds: float = Field(0, ge=0, description="Stop training when this much time is spent; 0 = no limit.")
    max_steps: int = Field(0, ge=0, le=10_000_000, description="Text generation: optimizer steps to train; "
                                                                "0 = epochs over the training tokens.")
    eval_batches: int = Field(20, ge=1, le=10_000, description="Text generation: validation batches per "
                                                               "evaluation (fixed blocks spread over the text).")
    torch_compile: bool = Field(False, description="Compile the model with torch.compile: faster steps for "
                                                   "Transformer templates on a GPU, after a compile of tens of "
                                                   "seconds at the first step (counted in the run's time); "
                                                   "rarely worth it on a CPU.")

    @field_validator("template", mode="before")
    @classmethod
    def _template_dict(cls, value):
        return _template_from(value)

    @model_validator(mode="after")
    def _template_fits_task(self) -> "TrainConfig":
        if self.task not in TASKS:
            raise ValueError(f"unknown task '{self.task}'; pick one of {', '.join(TASKS)}")
        kinds = templates_of(self.task)
        if self.template.kind not in kinds or not isinstance(self.template, template_classes()[self.template.kind]):
            raise ValueError(f"template '{self.template.kind}' does not do {self.task}; "
                             f"pick one of {', '.join(kinds) or 'none yet'}")
        return self


def _default_template() -> TemplateConfig:
    """The default task's default template, with its defaults."""
    task = TASKS[DEFAULT_TASK]
    return template_classes()[task.default_template]()


# The TrainConfig fields a task's `training_defaults` set per template (the form switches them on a pick).
TEMPLATE_TRAINING_FIELDS = ("epochs", "learning_rate", "weight_decay")


def task_of(template_kind: str) -> str:
    """The name of the task a template kind does."""
    return task_of_template(template_kind).name


def default_config(dataset_id: int, template_kind: str, task: str | None = None) -> TrainConfig:
    """A config with the template's defaults and its usual training settings; no task = the template's own."""
    template = template_classes()[template_kind]()
    task = task_of(template_kind) if task is None else task
    defaults = TASKS[task].training_defaults.get(template_kind, {}) if task in TASKS else {}
    return TrainConfig(dataset_id=dataset_id, task=task, template=template, **defaults)


def preset_config(dataset_id: int, preset: TrainPreset, task: str) -> TrainConfig:
    """A config for `preset`: its template with its settings, over the template's usual ones."""
    base = default_config(dataset_id, preset.template, task)
    template = {**base.template.model_dump(), **preset.template_settings}
    return TrainConfig.model_validate({**base.model_dump(), **preset.settings, "template": template})


def _unknown_setting(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known + [k.removeprefix("template.") for k in known], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown setting '{key}'.{hint} Settings: {', '.join(known)}."


def apply_overrides(config: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """Return a new config with `key=value` overrides applied (template fields as `template.key`).

    Values are parsed by pydantic, so "3" becomes 3 for an int field; an unknown key or a value out
    of range raises pydantic's ValidationError, which names the field.
    """
    data = config.model_dump()
    known = [k for k in data if k != "template"] + [f"template.{k}" for k in data["template"] if k != "kind"]
    for key, value in overrides.items():
        target = data
        parts = key.split(".")
        if parts[0] in data["template"] and parts[0] not in data:
            parts = ["template", *parts]  # let users write `hidden_size=64` for template fields
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise UnknownSetting(_unknown_setting(key, known))
            target = target[part]
        if parts[-1] not in target:
            raise UnknownSetting(_unknown_setting(key, known))
        target[parts[-1]] = None if value.lower() in ("none", "null") else value
    return TrainConfig.model_validate(data)
