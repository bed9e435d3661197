"""Export a run as a Hugging Face Space: a standalone Gradio demo of the model, ready to push.

What a Space folder holds:
    app.py, text_model.py, image_model.py, table_model.py   the demo (copied from space_template/; no
                              Modelsmith imports)
    requirements.txt          pinned like Modelsmith's own: torch==2.13.0, gradio 6, transformers 5, ...
                              (+ LightGBM and pandas for a table model, efficientnet-lite-pytorch
                              for an EfficientNet-Lite0)
    README.md                 Spaces metadata (sdk: gradio, sdk_version, app_file, title, emoji, colours)
    space.json                what the model does and how text_model.py loads it
    model/                    the files of the model zip (weights, config, tokenizer, card, run config)

The folder is written aside and renamed into place (or zipped), so a reader never sees half a Space.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from backend.errors import UserError
from backend.tasks.registry import get_task
from backend.sharing.export import ExportResult, copy_model_files, export_name, model_folder, resolve_out
from storage.records import RunRecord

log = logging.getLogger(__name__)

# The standalone Space app is a Gradio program of its own: it lives outside backend/ (which keeps
# clear of the UI library) and is copied, not imported.
SPACE_FILES = Path(__file__).resolve().parents[2] / "space_template"
APP_FILES = ("app.py", "text_model.py", "image_model.py", "table_model.py")
MODEL_DIR = "model"
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
# The Space installs these; the same specifiers as Modelsmith's requirements.txt, so the demo runs
# on the versions the model was trained with, except Gradio: the Space's app uses only Gradio 6.0's
# API (the app itself needs 6.31 for its launch options). torch is pinned exactly, as in ours.
REQUIREMENTS = ("torch==2.13.0", "gradio>=6.0,<7", "transformers>=5.0,<6", "safetensors>=0.5",
                "tokenizers>=0.21,<1", "huggingface_hub>=1.0")
# A table model's Space reads rows with pandas and runs a gbdt model with LightGBM (same specifiers as ours).
TABLE_REQUIREMENTS = ("pandas>=2.2,<4", "lightgbm>=4.3,<5")
# Image networks saved as a plain state dict: image_model.py builds them itself (the `family` in
# space.json); any other image template is a transformers folder.
IMAGE_FAMILIES = ("cnn", "efficientnet-lite0")
# What a family's Space installs beyond REQUIREMENTS: EfficientNet-Lite0's architecture (the
# weights are the run's own model.safetensors; the ImageNet weights package is not needed).
FAMILY_REQUIREMENTS = {"efficientnet-lite0": ("efficientnet-lite-pytorch==0.1.0",)}
DEFAULT_GRADIO_VERSION = "6.0.0"


def gradio_version() -> str:
    """The installed Gradio version (read from package metadata: the backend never loads the UI library)."""
    try:
        return version("gradio")
    except PackageNotFoundError:
        return DEFAULT_GRADIO_VERSION


def space_info(run: RunRecord, folder: Path, title: str) -> dict:
    """space.json: title, task, the panel the Space's app shows (as the task says: the app, a
    standalone copy, cannot ask the registry), how the model files load, and the model's numbers."""
    return {**_model_info(run, folder, title), "panel": get_task(run.task).panel}


def _model_info(run: RunRecord, folder: Path, title: str) -> dict:
    """How text_model.py / image_model.py load the files (family), max_length, labels, image sizes."""
    config = _read_json(folder / "config.json")
    kind = config.get("model_kind")
    if get_task(run.task).panel == "table":  # table_model.py reads template.json and preprocessing.json itself
        template = _read_json(folder / "template.json")
        spec = _read_json(folder / "preprocessing.json").get("spec") or {}
        return {"title": title, "task": run.task, "panel": "table", "family": template.get("kind"),
                "target": spec.get("target"), "inputs": spec.get("inputs")}
    if get_task(run.task).panel == "image":  # image_model.py takes the image as the app does: these numbers
        image = _read_json(folder / "modelsmith_image.json")
        return {"title": title, "task": run.task, "panel": "image",
                "family": kind if (kind := image["template"]["kind"]) in IMAGE_FAMILIES else "transformers",
                "labels": list(image["labels"]), "input_size": int(image["input_size"]), "mean": image["mean"],
                "std": image["std"], "template": image["template"]}
    if get_task(run.task).panel == "generate":
        family = "lstm-lm" if kind == "modelsmith-lstm-lm" else "transformers"
        return {"title": title, "task": run.task, "family": family}
    if kind == "modelsmith-lstm":
        return {"title": title, "task": run.task, "family": "lstm", "max_length": int(config["max_length"]),
                "labels": list(config["labels"])}
    # As backend.tasks.text_classification.transformer.load_transformer: the tokenizer's limit and the positions cap it.
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    limits = [int(value) for value in (tokenizer_config.get("model_max_length"), config.get("max_position_embeddings"))
              if isinstance(value, (int, float)) and value > 0]
    id2label = config.get("id2label") or {}
    labels = [str(id2label.get(str(i), f"LABEL_{i}")) for i in range(len(id2label))]
    return {"title": title, "task": run.task, "family": "transformers", "max_length": min(limits or [512]),
            "labels": labels}


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def space_readme(run: RunRecord, title: str, emoji: str, color_from: str, color_to: str) -> str:
    """README.md with the Spaces metadata block, and how to call the demo from code."""
    # JSON strings are valid YAML scalars: a title with ':' or quotes cannot break the metadata.
    front = ["---", f"title: {json.dumps(title)}", f"emoji: {emoji}", f"colorFrom: {color_from}",
             f"colorTo: {color_to}", "sdk: gradio", f"sdk_version: {gradio_version()}", "app_file: app.py",
             "pinned: false", "tags:", "- modelsmith", f"- {run.task}", "---", ""]
    imports = ""
    if get_task(run.task).panel == "generate":
        call = ('client.predict("Once upon a time", 200, 0.8, 0, api_name="/generate")'
                "  # prompt, new tokens, temperature, seed (-1 = random)")
        what = "continues a prompt, streaming the text as it is written"
    elif get_task(run.task).panel == "table":
        call = (f"client.predict({', '.join(example_values(run))}, api_name=\"/predict\")"
                "  # one value per input column, in the form's order (None = missing)")
        what = "predicts from one row of a table, filled in on a form"
    elif get_task(run.task).panel == "image":
        call = 'client.predict(handle_file("photo.jpg"), api_name="/predict")  # {"label": ..., "confidences": [...]}'
        imports = ", handle_file"  # usage.md's import line: a local file goes through handle_file
        what = "sorts an image into classes and shows the probability of each"
    else:
        call = 'client.predict("some text", api_name="/predict")  # {"label": ..., "confidences": [...]}'
        what = "sorts a text into classes and shows the probability of each"
    lines = [*front, f"# {title}", "",
             f"A demo of a model trained with Modelsmith (template `{run.template}`, run {run.id}, "
             f"`{run.name}`): it {what}.",
             "The model files are in `model/`; its card is `model/README.md`.", "",
             "Run it locally with `pip install -r requirements.txt && python app.py` (http://127.0.0.1:7860).", "",
             (SPACE_FILES / "usage.md").read_text(encoding="utf-8").replace("{imports}", imports)
             .replace("{call}", call)]
    return "\n".join(lines)


def example_values(run: RunRecord) -> list[str]:
    """A Python literal per input column of a table model, for a call example: a value seen in training."""
    values = []
    for field in get_task(run.task).input_form(model_folder(run)):
        if field.get("choices"):
            values.append(repr(field["choices"][0]))
        elif "mean" in field:
            values.append(f"{field['mean']:.4g}")
        else:
            values.append("None")
    return values


def _check_style(emoji: str, color_from: str, color_to: str) -> None:
    for name, color in (("colorFrom", color_from), ("colorTo", color_to)):
        if color not in SPACE_COLORS:
            raise UserError(f"{name} '{color}' is not a Spaces colour; pick one of {', '.join(SPACE_COLORS)}.")
    if not emoji.strip() or len(emoji) > 8 or any(ch in emoji for ch in "\n:#"):
        raise UserError("The emoji must be one emoji (e.g. 🛠️); leave it empty for the default.")


def write_space(run: RunRecord, target: Path, *, title: str | None = None, emoji: str = "🛠️",
                color_from: str = "indigo", color_to: str = "blue") -> list[str]:
    """Write the Space files into the (new or empty) folder `target`; the relative paths written."""
    folder = model_folder(run)
    _check_style(emoji or "🛠️", color_from, color_to)
    title = (title or run.name or f"Run {run.id}").strip()[:60]
    target.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        shutil.copyfile(SPACE_FILES / name, target / name)
    model_names = copy_model_files(run, target / MODEL_DIR)
    info = space_info(run, folder, title)
    (target / "space.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    requirements = (REQUIREMENTS + (TABLE_REQUIREMENTS if get_task(run.task).panel == "table" else ())
                    + FAMILY_REQUIREMENTS.get(info.get("family"), ()))
    (target / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    readme = space_readme(run, title, emoji or "🛠️", color_from, color_to)
    (target / "README.md").write_text(readme, encoding="utf-8")
    return sorted([*APP_FILES, "space.json", "requirements.txt", "README.md",
                   *(f"{MODEL_DIR}/{name}" for name in model_names)])


def export_space(run: RunRecord, out: Path | str, *, as_zip: bool = False, title: str | None = None,
                 emoji: str = "🛠️", color_from: str = "indigo", color_to: str = "blue") -> ExportResult:
    """Write a Space for `run` at `out`: a folder, or a zip when as_zip (an existing folder gets <name>-run<id>-space).

    An existing target is never overwritten (UserError): pick a new path or remove the old one.
    """
    model_folder(run)  # a run without a model fails before anything is written
    if not get_task(run.task).has_demo_page:
        raise UserError(f"Run #{run.id} is a {get_task(run.task).model_noun}: the Space app does not show these "
                        "models yet. Export it as a zip (--format zip) instead.")
    target = resolve_out(out, export_name(run, "-space.zip" if as_zip else "-space"))
    if target.exists():
        raise UserError(f"{target} already exists; give a new path with --out, or remove the old export first.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:  # built aside, then renamed: a reader never sees half a Space
        files = write_space(run, staging, title=title, emoji=emoji, color_from=color_from, color_to=color_to)
        if as_zip:
            packed = staging.with_name(staging.name + ".zip")
            try:
                with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    for name in files:
                        archive.write(staging / name, name)
                packed.replace(target)
            finally:
                packed.unlink(missing_ok=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported run %d as a Space at %s (%d files)", run.id, target, len(files))
    return ExportResult(path=target, format="space-zip" if as_zip else "space", files=files)
