"""Train tab: dataset + task + template, settings read from the config classes, estimate, launch.

The form is generated from the pydantic fields of TrainConfig and each template class: labels,
defaults and help texts live on the fields, so a new setting appears here without UI code.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, get_args, get_origin

import gradio as gr
from pydantic import BaseModel

from backend.config import (TEMPLATE_TRAINING_FIELDS, TrainConfig, default_config, preset_config, template_classes,
                            template_description, templates_of)
from backend.services import Services, default_task, get_task, list_tasks, task_names, task_of_template
from backend.serving.startup import load_model_stack
from ui.downloads import download_when_ready
from ui.errors import shows_errors
from ui.formatting import dataset_choices, error_box, format_bytes, format_seconds

BASIC_FIELDS = ("epochs", "batch_size", "learning_rate", "max_length")
NOT_IN_FORM = {"name", "dataset_id", "task", "template", *BASIC_FIELDS}
# Settings only some tasks read, and the Task flag that says whether one does: the others never see them.
TASK_ONLY_FIELDS = {"max_length": "uses_max_length", "max_steps": "uses_max_steps", "eval_batches": "uses_max_steps"}


def task_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered task, for the task radio."""
    return [(task.label, task.name) for task in list_tasks()]


def _unwrap_optional(annotation):
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def field_input(model: type[BaseModel], name: str, value=None, visible: bool = True) -> gr.components.Component:
    """A form input for one pydantic field: its type picks the component, its description the help."""
    info = model.model_fields[name]
    annotation, optional = _unwrap_optional(info.annotation)
    default = info.default if value is None else value
    label = name.replace("_", " ").capitalize()
    help_text = " ".join(filter(None, [info.description, _range_text(info)])) or None
    if get_origin(annotation) is Literal:
        return gr.Dropdown(list(get_args(annotation)), value=default, label=label, info=help_text, visible=visible)
    if annotation is bool:
        return gr.Checkbox(value=bool(default), label=label, info=help_text, visible=visible)
    if annotation is int:
        return gr.Number(value=default, label=label, info=help_text, precision=0, visible=visible)
    if annotation is float and optional:
        # A text box: gr.Number shows and sends 0 for an empty value (gradio-app/gradio#6728), so "empty
        # keeps the model's own" would silently become 0. Pydantic reads the text as the number.
        return gr.Textbox(value="" if default is None else str(default), label=label + " (optional)",
                          placeholder="empty: the default", info=help_text, visible=visible)
    if annotation is float:
        return gr.Number(value=default, label=label, info=help_text, visible=visible)
    return gr.Textbox(value="" if default is None else str(default), label=label, info=help_text, visible=visible)


def _range_text(info) -> str:
    """'(1 to 4096)' from a field's ge/gt/le/lt constraints; '' when it has none."""
    low = high = None
    for rule in info.metadata:
        for attr, is_low in (("ge", True), ("gt", True), ("le", False), ("lt", False)):
            value = getattr(rule, attr, None)
            if value is not None:
                text = f"{value:g}" if isinstance(value, float) else f"{value:,}"
                text = text if attr in ("ge", "le") else f"{'above' if is_low else 'below'} {text}"
                low, high = (text, high) if is_low else (low, text)
    if low and high:
        return f"({low} to {high})"
    return f"(at least {low})" if low else f"(at most {high})" if high else ""


def form_fields() -> list[tuple[str, str]]:
    """(owner, field) pairs in form order: owner is 'config' or a template kind."""
    pairs = [("config", name) for name in BASIC_FIELDS]
    pairs += [("config", name) for name in TrainConfig.model_fields if name not in NOT_IN_FORM]
    for kind, template in template_classes().items():
        pairs += [(kind, name) for name in template.model_fields if name != "kind"]
    return pairs


def _clean(value):
    if isinstance(value, float) and value != value:  # NaN from an emptied Number box
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def build_config(dataset_id, task: str, kind: str, name: str, values: list) -> TrainConfig:
    """A validated TrainConfig from the form's values (pydantic errors name the field)."""
    if not dataset_id:
        raise gr.Error("Pick a dataset first (upload one in the Data tab).", print_exception=False)
    if kind not in templates_of(task):
        raise gr.Error(f"Pick a template for {task}.", print_exception=False)
    config_values: dict = {}
    template_values: dict = {"kind": kind}
    for (owner, name_), value in zip(form_fields(), values):
        value = _clean(value)
        if owner == "config" and value is not None:
            config_values[name_] = value
        elif owner == kind and (value is not None or _unwrap_optional(
                template_classes()[kind].model_fields[name_].annotation)[1]):
            template_values[name_] = value
    return TrainConfig.model_validate({**config_values, "name": (name or "").strip(), "dataset_id": int(dataset_id),
                                       "task": task, "template": template_values})


def config_values(config: TrainConfig) -> list:
    """The form's values for a config (Clone): its own template's fields, defaults elsewhere."""
    template = config.template.model_dump()
    values = []
    for owner, name in form_fields():
        if owner == "config":
            values.append(getattr(config, name))
        elif owner == config.template.kind:
            values.append(template.get(name))
        else:
            values.append(template_classes()[owner].model_fields[name].default)
    return values


def on_task_change(task: str, kind: str | None):
    """Offer the task's templates; keep the chosen one if it fits, else pick the first (and its training settings)."""
    kinds = templates_of(task)
    if kind in kinds:
        return gr.update(choices=[(k, k) for k in kinds], value=kind), *(gr.skip() for _ in TEMPLATE_TRAINING_FIELDS)
    first = kinds[0] if kinds else None
    return gr.update(choices=[(k, k) for k in kinds], value=first), *on_template_picked(first)


def switched_fields() -> tuple[str, ...]:
    """TrainConfig fields some task or template does not read: TASK_ONLY_FIELDS first, then every
    Task.ignored_settings, then every template's ignored_settings."""
    ignored = [name for task in list_tasks() for name in task.ignored_settings]
    ignored += [name for template_class in template_classes().values() for name in template_class.ignored_settings]
    return tuple(dict.fromkeys([*TASK_ONLY_FIELDS, *ignored]))


def on_task_fields(task: str, kind: str | None = None):
    """Show the settings the task and template read only (switched_fields() order): a classifier has no
    max steps or eval batches, a language model reads `block size` tokens instead of a max length,
    gbdt has no epochs, batch size, warm-up or the other optimizer-loop settings."""
    return tuple(gr.update(visible=_shown_for(field_name, task, kind)) for field_name in switched_fields())


def on_form_changed(launch_message: str | None = None):
    """Any change of the form makes the shown estimate stale: it goes. So does a launch's error (it was
    about the settings before); a launch's confirmation stays ("Run #3 queued" is still true). The
    confirmation must not go: a box left by clicking Launch changes as the click launches, and on a
    busy server that change's clearing could land after the confirmation and wipe it."""
    stale_error = isinstance(launch_message, str) and "ms-error" in launch_message
    return "", ("" if stale_error else gr.skip())


def on_dataset_picked(services: Services, dataset_id):
    """A dataset was prepared for one task: switch the form to it."""
    if not dataset_id:
        return gr.skip()
    try:
        return services.get_dataset(int(dataset_id)).task
    except Exception:  # deleted meanwhile: launching will say so
        return gr.skip()


def on_template_change(kind: str | None):
    """Show the chosen template's description and its settings group."""
    updates = [gr.update(visible=(group_kind == kind)) for group_kind in template_classes()]
    description = f"_{template_description(kind)}_" if kind in template_classes() else ""
    return (description, *updates)


def on_template_picked(kind: str | None):
    """A person picked a template: switch to its usual epochs, learning rate and weight decay
    (not on Clone, which keeps the cloned run's own)."""
    if kind not in template_classes():
        return tuple(gr.update() for _ in TEMPLATE_TRAINING_FIELDS)
    config = default_config(1, kind, _task_of(kind))
    return tuple(gr.update(value=getattr(config, field)) for field in TEMPLATE_TRAINING_FIELDS)


def _opening_value(opening: TrainConfig, field_name: str):
    """The form opens on one template: its own training settings, None (the field's default) elsewhere."""
    return getattr(opening, field_name) if field_name in TEMPLATE_TRAINING_FIELDS else None


def _shown_for(field_name: str, task: str | None, kind: str | None = None) -> bool:
    if task in task_names() and field_name in get_task(task).ignored_settings:
        return False
    if kind in template_classes() and field_name in template_classes()[kind].ignored_settings:
        return False
    flag = TASK_ONLY_FIELDS.get(field_name)
    return flag is None or (task in task_names() and getattr(get_task(task), flag))


def _task_of(kind: str) -> str:
    return task_of_template(kind).name


@shows_errors(fallback=error_box)
def on_estimate(services: Services, dataset_id, task, kind, name, *values):
    """Measure a few training steps of this config on this device; show params, memory, time per epoch.

    With worker processes (the app's default) the model is built and timed in a short process of its
    own, never in the serving app; the thread launcher (one process for everything) measures here."""
    config = build_config(dataset_id, task, kind, name, list(values))
    dataset = services.get_dataset(config.dataset_id)
    if services.runner.uses_processes:
        from backend.jobs.estimate_worker import estimate_out_of_process

        result = estimate_out_of_process(services.settings, config)
    else:
        load_model_stack()
        from backend.training.estimate import estimate

        result = estimate(config, dataset)
    memory_note = result.memory_note or (
        "measured peak on the GPU" if result.measured_peak else
        f"weights {format_bytes(result.weights_bytes)} + gradients and optimizer state "
        f"{format_bytes(result.training_state_bytes)} + activations {format_bytes(result.activation_bytes)}")
    unit = result.step_name
    per_epoch = unit == "step"  # boosting rounds have no epochs: the whole run is its rounds
    whole_run = (plural(result.total_steps, unit) if config.max_steps or not per_epoch
                 else plural(config.epochs, "epoch"))
    budget = config.time_budget_seconds
    seconds = min(result.seconds_total, budget) if budget else result.seconds_total
    setup = result.setup_seconds
    low, high = (min(setup + result.seconds_per_step_low * result.total_steps, seconds),
                 min(setup + result.seconds_per_step_high * result.total_steps, budget or float("inf")))
    time_line = (f"- **Time per epoch on {device_name(result.device)}:** about "
                 f"{format_seconds(result.seconds_per_epoch)} ({result.steps_per_epoch:,} steps × "
                 f"{result.seconds_per_step:.2f} s)" if per_epoch else
                 f"- **Time per {unit} on {device_name(result.device)}:** about {short_time(result.seconds_per_step)} "
                 "(validation scoring included)")
    timed = plural(result.timed_steps, "measured " + ("training step" if per_epoch else unit))
    lines = [f"#### Estimate (from {timed})",
             *([f"- **Parameters:** {result.parameters:,} ({result.trainable_parameters:,} trainable)"]
               if result.parameters else []),
             f"- **Memory for training:** about {format_bytes(result.memory_bytes)} ({memory_note})",
             *([f"- **Set-up (preprocessing{'' if per_epoch else ', binning'}):** about {short_time(setup)}"]
               if setup else []),
             time_line,
             f"- **Whole run ({whole_run}):** about {format_seconds(seconds)} (range {format_seconds(low)}"
             f"–{format_seconds(high)} from the fastest and slowest {unit}), plus evaluation"
             + (" (the time budget ends it sooner)" if budget and budget < result.seconds_total else "")
             + ("; early stopping may end it sooner" if not per_epoch else ""),
             "", f"<small>{load_note(result.load_average, result.cpu_count)} Once the run trains, its ETA "
             "in the Runs tab comes from its own measured steps.</small>"]
    warnings = dataset.report.get("warnings", [])
    if warnings:
        lines += ["", f"**Dataset warnings ({dataset.name}):**", *[f"- {w}" for w in warnings]]
    return "\n".join(lines)


def short_time(seconds: float) -> str:
    """'0.0042' -> '4.2 ms', '1.5' -> '1.50 s': a boosting round on a small table takes milliseconds."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def plural(count: int, word: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def load_note(load_average: float | None, cpu_count: int) -> str:
    """Why the estimate may be off: it was measured under the machine's load at that moment."""
    if load_average is None:
        return "Measured under the machine's current load: other jobs starting or stopping change the time."
    busy = load_average / max(cpu_count, 1)
    state = "busy" if busy > 1.2 else "partly busy" if busy > 0.5 else "mostly idle"
    return (f"Measured while the machine was {state} (load {load_average:.1f} on {cpu_count} cores): "
            "if other jobs start or stop, training gets slower or faster with them.")


def device_name(device: str) -> str:
    """'cpu' -> 'CPU', 'cuda:0' -> 'GPU'."""
    return {"cpu": "CPU", "mps": "Apple GPU"}.get(device, "GPU" if device.startswith("cuda") else device)


GPU_CHOICES = [("All GPUs", "all"), ("1 GPU", "one"), ("Pick GPUs", "pick")]


def default_gpu_choice(services: Services) -> str:
    """The picker opens on what the app would do anyway: every GPU, or one per run."""
    per_run = services.settings.gpus_per_run
    return "all" if per_run == 0 or per_run >= len(services.gpus()) else "one"


def on_gpu_choice(choice: str):
    """Show the GPU checkboxes only for 'Pick GPUs'."""
    return gr.update(visible=choice == "pick")


def gpu_request(services: Services, extra: list) -> str | None:
    """The run's GPU request from the picker's (choice, picked GPUs) that follow the form's values:
    None (the app's default) when the picker is not shown (fewer than two GPUs) or not passed."""
    if len(extra) < 2 or len(services.gpus()) < 2:
        return None
    choice, picked = extra[0], extra[1] or []
    if choice == "pick":
        if not picked:
            raise gr.Error("Tick at least one GPU for this run, or choose All GPUs or 1 GPU.", print_exception=False)
        return ",".join(str(g) for g in picked)
    return choice or None


def _form_and_gpus(services: Services, values) -> tuple[list, str | None]:
    count = len(form_fields())
    return list(values[:count]), gpu_request(services, list(values[count:]))


@shows_errors(fallback=error_box)
def on_launch(services: Services, dataset_id, task, kind, name, *values):
    """Validate the form into a TrainConfig and queue the run (on the GPUs picked for it)."""
    values, gpus = _form_and_gpus(services, values)
    config = build_config(dataset_id, task, kind, name, values)
    run_id = services.runner.submit(config, gpus=gpus)
    queued = [r.id for r in services.queued_runs()]
    where = f"position {queued.index(run_id) + 1}" if run_id in queued else "starting now"
    gr.Info(f"Run #{run_id} queued.")
    message = f"Run **#{run_id}** queued ({where}). Follow it in the **Runs** tab."
    others = services.join_commands(run_id)
    if others:  # a run over several machines waits for each of them to join
        lines = "\n".join(others)
        message += (f"\n\nIt spans {len(others) + 1} machines: on each other machine (same "
                    f"`MODELSMITH_DATABASE_URL` and `MODELSMITH_HOME`) run its line:\n\n```bash\n{lines}\n```")
    return message


@shows_errors(fallback=lambda message: (None, error_box(message)))
def on_save_config(services: Services, dataset_id, task, kind, name, *values):
    """Write the form's config as a JSON file to download, and show the equivalent CLI command."""
    from backend.training.config_files import cli_command, save_config
    from ui.playground_tab import fresh_download_folder

    config = build_config(dataset_id, task, kind, name, list(values))
    path = save_config(config, fresh_download_folder(services.settings, "config"))
    return str(path), command_markdown(cli_command(config))


@shows_errors(fallback=lambda message: (None, error_box(message)))
def on_show_command(services: Services, dataset_id, task, kind, name, *values):
    """The `python app.py train ...` command that launches the same run from a shell, and the exact
    `accelerate launch` command the app starts the run's worker with."""
    from backend.training.config_files import cli_command

    values, gpus = _form_and_gpus(services, values)
    command = cli_command(build_config(dataset_id, task, kind, name, values))
    return gr.skip(), command_markdown(command, services.launch_command(gpus))


def command_markdown(command: str, launch: str = "") -> str:
    text = f"**The same run from a shell:**\n```bash\n{command}\n```"
    if launch:
        text += f"\n\n**How the app starts this run's worker:**\n```bash\n{launch}\n```"
    return text


def _load_failed(message: str):
    return (*[gr.skip()] * (4 + len(form_fields())), error_box(message))


@shows_errors(fallback=_load_failed)
def on_load_config(services: Services, path):
    """Fill the form from a saved config file; a file that is not one gets a message and changes nothing."""
    from backend.training.config_files import load_config

    if not path:
        return (*[gr.skip()] * (4 + len(form_fields())), "")
    config = load_config(Path(path))  # a file that is not a config: UserError, shown by _load_failed
    note = f"Loaded {Path(path).name}."
    if config.dataset_id not in {d.id for d in services.list_datasets()}:
        note += f" Its dataset #{config.dataset_id} is not stored here: pick a dataset before launching."
    values = fill_from_config(config)
    values[3] = config.name  # a loaded config keeps its name (a Clone adds "(clone)")
    return (*values, note)


@dataclass
class TrainForm:
    """Components other tabs fill (Clone) or refresh (new datasets)."""

    dataset: gr.Dropdown
    task: gr.Radio
    template: gr.Dropdown
    name: gr.Textbox
    inputs: list = field(default_factory=list)

    @property
    def all_inputs(self) -> list:
        return [self.dataset, self.task, self.template, self.name, *self.inputs]


def fill_from_config(config: TrainConfig) -> list:
    """Values for TrainForm.all_inputs from a stored config (Clone)."""
    return [config.dataset_id, config.task, gr.update(choices=[(k, k) for k in templates_of(config.task)],
                                                      value=config.template.kind),
            f"{config.name or 'run'} (clone)", *config_values(config)]


def preset_choices(task: str | None) -> list[tuple[str, str]]:
    """(label, label) of the task's presets, after a "none" choice; [] when it has none."""
    presets = get_task(task).presets if task in task_names() else ()
    return [("none: my own settings", "")] + [(preset.label, preset.label) for preset in presets] if presets else []


def on_task_presets(task: str | None):
    """Offer the task's presets (hidden for a task without any)."""
    choices = preset_choices(task)
    return gr.update(choices=choices, value="" if choices else None, visible=bool(choices)), ""


def on_preset_picked(dataset_id, task: str, name: str, label: str | None):
    """Fill the whole form with a preset's settings (template included); 'none' leaves the form as it is."""
    presets = {preset.label: preset for preset in get_task(task).presets} if task in task_names() else {}
    if label not in presets:
        return (*(gr.skip() for _ in range(4 + len(form_fields()))), "")
    preset = presets[label]
    config = preset_config(int(dataset_id) if dataset_id else 1, preset, task)
    values = fill_from_config(config)
    values[0], values[3] = gr.skip(), name  # the dataset and the run name stay the person's
    return (*values, f"<small>{preset.note}</small>")


def build_train_tab(services: Services) -> TrainForm:
    """Lay out the Train tab and wire its events; returns the form for Clone."""
    records = services.list_datasets()
    first_task = default_task()
    first_kind = first_task.default_template
    with gr.Row():
        dataset = gr.Dropdown(dataset_choices(records), value=records[0].id if records else None, label="Dataset",
                              scale=2, elem_id="train-dataset")
        task = gr.Radio(task_choices(), value=first_task.name, label="Task", scale=2)
        template = gr.Dropdown([(k, k) for k in first_task.template_kinds], value=first_kind,
                               label="Template", scale=1)
    description = gr.Markdown(f"_{template_description(first_kind)}_")
    with gr.Row():
        first_presets = preset_choices(first_task.name)
        preset = gr.Dropdown(first_presets, value="" if first_presets else None, label="Preset", visible=bool(first_presets), scale=1,
                             info="Fill in every setting from a published recipe.", elem_id="preset")
        preset_note = gr.Markdown(elem_id="preset-note")
    name = gr.Textbox(label="Run name", placeholder="optional: a name to find the run again")
    pairs = form_fields()
    components: dict[tuple[str, str], gr.components.Component] = {}
    opening = default_config(1, first_kind)  # the template the form opens on
    opening_shown = partial(_shown_for, task=opening.task, kind=opening.template.kind)
    with gr.Row():
        for owner, field_name in pairs[: len(BASIC_FIELDS)]:
            components[(owner, field_name)] = field_input(TrainConfig, field_name, _opening_value(opening, field_name),
                                                          visible=opening_shown(field_name))
    groups = {}
    with gr.Accordion("Advanced settings", open=False):
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("**Training**")
                for owner, field_name in pairs:
                    if owner == "config" and field_name not in BASIC_FIELDS:
                        components[(owner, field_name)] = field_input(TrainConfig, field_name,
                                                                      _opening_value(opening, field_name),
                                                                      visible=opening_shown(field_name))
            with gr.Column():
                gr.Markdown("**Model**")
                for kind, template_class in template_classes().items():
                    with gr.Group(visible=(kind == first_kind)) as group:
                        for owner, field_name in pairs:
                            if owner == kind:
                                components[(owner, field_name)] = field_input(template_class, field_name)
                    groups[kind] = group
    with gr.Row(equal_height=False):
        with gr.Column():
            estimate_button = gr.Button("Estimate time and memory", elem_id="estimate")
            estimate_output = gr.Markdown(elem_id="estimate-output")
        with gr.Column():
            gpus = services.gpus()  # the picker only where there is something to pick
            with gr.Row(visible=len(gpus) > 1, elem_id="gpu-picker"):
                gpu_choice = gr.Radio(GPU_CHOICES, value=default_gpu_choice(services) if len(gpus) > 1 else "all",
                                      label="GPUs for this run", elem_id="gpu-choice",
                                      info="One training process per GPU; the Runs tab shows which it got.")
                gpu_pick = gr.CheckboxGroup(list(gpus), value=[], label="Which GPUs", visible=False,
                                            elem_id="gpu-pick")
            launch_button = gr.Button("Launch training", variant="primary", elem_id="launch")
            launch_output = gr.Markdown(elem_id="launch-output")
    with gr.Accordion("Config file and command line", open=False):
        with gr.Row(equal_height=True):
            command_button = gr.Button("Show CLI command", size="sm", elem_id="show-command")
            save_button = gr.Button("Save config", size="sm", elem_id="save-config")
            load_button = gr.UploadButton("Load config", file_types=[".json"], type="filepath", size="sm",
                                          elem_id="load-config")
        config_file = gr.File(label="Saved config (JSON)", interactive=False, height=80, elem_id="config-file")
        command_output = gr.Markdown(elem_id="cli-command")

    form = TrainForm(dataset=dataset, task=task, template=template, name=name,
                     inputs=[components[pair] for pair in pairs])
    training_defaults = [components[("config", field)] for field in TEMPLATE_TRAINING_FIELDS]
    # .change, not .input: a dataset pick and Clone set the task too, and the field must follow.
    switched = [components[("config", name)] for name in switched_fields()]
    task.change(on_task_fields, [task, template], switched, api_visibility="private")
    template.change(on_task_fields, [task, template], switched, api_visibility="private")
    task.input(on_task_change, [task, template], [template, *training_defaults], api_visibility="private")
    task.change(on_task_presets, task, [preset, preset_note], api_visibility="private")
    preset.input(on_preset_picked, [dataset, task, name, preset], [*form.all_inputs, preset_note],
                 api_visibility="private")
    # .change: a dataset just ingested in the Data tab is picked here too, and the form must follow
    # its task. Clone sets dataset, task and template together, so the template then still fits.
    dataset.change(partial(on_dataset_picked, services), dataset, task, api_visibility="private").then(
        on_task_change, [task, template], [template, *training_defaults], api_visibility="private")
    template.change(on_template_change, template, [description, *groups.values()], api_visibility="private")
    template.input(on_template_picked, template, training_defaults, api_visibility="private")
    estimate_button.click(partial(on_estimate, services), form.all_inputs, estimate_output, api_visibility="private",
                          concurrency_limit=1)
    gpu_inputs = [gpu_choice, gpu_pick]  # after the form's values: the handlers take them from the end
    gpu_choice.change(on_gpu_choice, gpu_choice, gpu_pick, queue=False, api_visibility="private")
    launch_button.click(partial(on_launch, services), [*form.all_inputs, *gpu_inputs], launch_output,
                        api_visibility="private")
    for component in form.all_inputs:  # an estimate of other settings would mislead: it goes on any change
        component.change(on_form_changed, launch_output, [estimate_output, launch_output], queue=False,
                         show_progress="hidden", api_visibility="private")
    command_button.click(partial(on_show_command, services), [*form.all_inputs, *gpu_inputs],
                         [config_file, command_output], api_visibility="private")
    download_when_ready(save_button.click(partial(on_save_config, services), form.all_inputs,
                                          [config_file, command_output], api_visibility="private"), config_file)
    load_button.upload(partial(on_load_config, services), load_button, [*form.all_inputs, command_output],
                       api_visibility="private")
    return form
