"""What a task is: the one object the rest of the code asks about a task, instead of testing its name.

A task (text classification, text generation, ...) is a package under `backend/tasks/` that
exposes one `Task` and is listed in `backend.tasks.registry.TASKS`. The UI, the job runner, the
exporters and the CLI ask it: its label, which columns a dataset needs, its templates, how a run
trains, which metric picks the best checkpoint, how a finished model predicts, which panel shows
it. Behaviour is named as "module:function" and imported on first use, so importing the registry
(which `backend.config` does) never loads torch, and no module imports its own caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

# Which Playground / demo / Space panel renders a task's models: the UI keeps the gradio code
# for each panel and picks one by this key.
Panel = Literal["classify", "generate", "image", "table"]


class TemplateConfig(BaseModel):
    """Base of every template's settings: frozen, no unknown keys, and a `kind` that names it."""

    model_config = {"frozen": True, "extra": "forbid"}
    kind: str
    # TrainConfig fields this template never reads (the Train tab hides them while it is picked),
    # beyond those its task ignores for every template (Task.ignored_settings).
    ignored_settings: ClassVar[tuple[str, ...]] = ()


class Entry:
    """A function named "package.module:function", imported when first called."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._function: Callable[..., Any] | None = None

    def __call__(self, *args, **kwargs):
        if self._function is None:
            module, _, name = self.path.partition(":")
            self._function = getattr(importlib.import_module(module), name)
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Entry({self.path!r})"

    @property
    def module(self) -> str:
        """The module the function lives in (imported with the function, on first call)."""
        return self.path.partition(":")[0]


@dataclass(frozen=True)
class TrainPreset:
    """A named set of settings the Train tab can fill in at once (e.g. a published recipe)."""

    label: str                        # what the preset picker shows
    template: str                     # the template kind it trains
    settings: Mapping[str, Any]       # TrainConfig fields
    template_settings: Mapping[str, Any]  # fields of that template
    note: str = ""                    # where the values come from, what they need (shown under the picker)


# The quality chart of a classifier (text or image): progress key -> label.
CLASSIFICATION_CURVES = {"eval_accuracy": "accuracy", "eval_macro_f1": "macro F1",
                         "eval_macro_precision": "macro precision", "eval_macro_recall": "macro recall"}


def no_hub_folder(model_config: dict, base_model: str) -> None:
    """`Task.infer_settings` of a task whose models are never Hugging Face folders: nothing to infer."""
    return None


@dataclass(frozen=True, eq=False)
class Task:
    """Everything the code outside `backend/tasks/` needs to know about one task.

    The defaults describe a classifier of texts scored by macro F1 (the first task); a task states
    only where it differs.
    """

    name: str                        # stored with datasets and runs, e.g. "text-classification"
    label: str                       # what the Train tab and the CLI show
    upload_label: str                # what the Data tab shows, with a hint of the input and output
    model_noun: str                  # what its model is called in pickers and messages ("classifier")
    templates: tuple[type[TemplateConfig], ...]  # in the order the Train tab offers them
    default_template: str            # the kind the Train tab opens on
    panel: Panel                     # which Playground / demo / Space panel renders its models
    prepare: Callable[..., Any]      # (path, options, validation_path, *, max_bytes, max_rows) -> PreparedDataset
    # (config, dataset, output_dir, on_progress, should_stop, resume, accelerator, settings=) -> TrainResult;
    # settings: the runner's machine Settings, for the strategy's setup
    train: Callable[..., Any]
    estimate: Callable[..., Any]     # (config, dataset) -> Estimate
    load_model: Callable[..., Any]   # (folder) -> the model, for checking an imported archive
    render_card: Callable[..., Any]  # (config, dataset, metrics, *, best_step, stop_reason) -> Markdown
    # The Hugging Face pipeline that loads an exported model; "" = the task's name (the Hub's names are ours).
    pipeline_tag: str = ""
    needs_label_column: bool = True  # a dataset needs a label (target) column besides its inputs
    best_metric: str = "macro_f1"    # validation metric that picks the best checkpoint
    best_metric_label: str = "validation macro F1"
    higher_is_better: bool = True
    quality_curves: Mapping[str, str] = field(default_factory=lambda: dict(CLASSIFICATION_CURVES))  # Runs tab chart
    quality_range: tuple[float | None, float | None] = (0, 1)  # y-axis of that chart (None = free)
    uses_max_length: bool = False    # TrainConfig.max_length applies (else the template's block_size)
    uses_max_steps: bool = False     # TrainConfig.max_steps applies
    exports_labels: bool = False     # an exported / imported model carries class names in its config.json
    # (config.json dict, base model) -> TrainConfig fields (template, ...), or None when the folder is
    # not this task's model (imports).
    infer_settings: Callable[..., Any] = no_hub_folder
    training_defaults: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)  # per template kind
    takes_files: bool = False        # its models read a file (an image), so its demo page may upload one
    stores_corpus: bool = False      # a dataset is one text per split: the Data tab reports it as a corpus
    length_title: str = "Text length (characters, training split)"  # the Data tab's length histogram
    headline_key: str = "eval_macro_f1"   # progress key of the score the Runs table shows while training
    headline_format: str = "{label} {value:.3f}"  # how that score reads ("macro F1 0.956")
    headline_label: str = "macro F1"
    presets: tuple[TrainPreset, ...] = ()  # settings the Train tab offers to fill in at once
    # How a finished run's folder becomes a predictor, cached (a few at a time) until its weights change.
    # What the predictor answers follows the task's panel: "classify" -> .predict(texts), .labels;
    # "generate" -> .stream(prompt, ...), .generate(prompt, ...), .dropped_characters(prompt);
    # "image" -> .predict_files(list[bytes]), .predict_paths(paths), .predict_zip(path).
    # None: the task predicts through `predict_rows` / `predict_table` instead (tables).
    load_predictor: Callable[..., Any] | None = None   # (model folder) -> predictor
    # Tasks whose datasets are files rather than text (image classification, issue 14): what the Data tab asks for.
    upload_kind: Literal["table", "image-zip"] = "table"
    # Tables (issue 15): a task whose models read a row of named, typed columns instead of one text.
    # The Data tab then shows the table report and the target picker, the Playground a form per
    # column, and `predict --file/--json-rows` goes through these two entries.
    reads_rows: bool = False
    predict_rows: Callable[..., Any] | None = None   # (model folder, [ {column: value} ]) -> [ {"prediction", ...} ]
    predict_table: Callable[..., Any] | None = None  # (model folder, table file, out folder) -> TablePredictions
    input_form: Callable[..., Any] | None = None     # (model folder) -> one field per input column, for a form
    # Which files make up a saved model, for export and import (tables: a LightGBM text model or
    # safetensors, beside template.json and preprocessing.json; no config.json).
    weights_files: tuple[str, ...] = ("model.safetensors",)  # a model holds one of these
    model_files: tuple[str, ...] = ("model.safetensors", "config.json")  # an import needs all of these
    has_demo_page: bool = True   # a demo link and a Space app can show its models
    # TrainConfig fields this task's training never reads: the Train tab hides them for it (tables
    # train with LightGBM or their own loop: no warm-up, accumulation, clipping, compile, step evals).
    ignored_settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.pipeline_tag:
            object.__setattr__(self, "pipeline_tag", self.name)  # frozen: set once, here

    @property
    def template_kinds(self) -> tuple[str, ...]:
        """The kinds of this task's templates, in the order they are offered."""
        return tuple(template_kind(template) for template in self.templates)

    def length_setting(self, config) -> str:
        """The setting that bounds a training example, with its value (for an out-of-memory hint)."""
        if self.uses_max_length:
            return f"max_length (now {config.max_length})"
        return f"block_size (now {getattr(config.template, 'block_size', '?')})"


def architectures(model_config: dict) -> list[str]:
    """The model classes a Hugging Face config.json names (for `infer_settings`)."""
    return [str(name) for name in model_config.get("architectures") or []]


def has_architecture(model_config: dict, *suffixes: str) -> bool:
    """Whether config.json names a model class ending in one of `suffixes` ("ForSequenceClassification")."""
    return any(name.endswith(suffixes) for name in architectures(model_config))


def clamp_length(requested: int, *limits: int | None) -> int:
    """The tokens one example may hold: what the config asks (max_length or block_size), within
    every limit that applies (the tokenizer's, the position embeddings', the text's length)."""
    return int(min([requested, *(int(limit) for limit in limits if limit is not None)]))


def template_kind(template: type[TemplateConfig]) -> str:
    """The `kind` a template class writes into its configs."""
    return str(template.model_fields["kind"].default)


def template_description(template: type[TemplateConfig]) -> str:
    """First line of a template's docstring, for the UI and the CLI."""
    return (template.__doc__ or template_kind(template)).strip().splitlines()[0]
