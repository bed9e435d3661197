"""Download a run's model as a zip, and import such a zip (or a Hugging Face model folder zip) as a run.

What a model zip holds (top level, no folders):
    model.safetensors, config.json (with label names), tokenizer files   the model
    README.md, run_config.json, metrics.json                           card, run config, best metrics
    modelsmith.json                                                    name, task, template of the run
Checkpoints, train.log and anything that could hold a pickle (*.bin, *.pt, ...) never go in.

Importing treats the archive as hostile: absolute paths, `..`, symlinks, too many files or too
many bytes once unpacked refuse the whole archive before anything is written. Files are unpacked
into a temporary folder inside runs/, checked (the model must load from safetensors), then
renamed to runs/<run id> in the same transaction that records the run, so a failed import
leaves neither files nor a row behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from backend.config import TrainConfig
from backend.errors import UserError, shorten
from backend.tasks.registry import get_task, list_tasks
from storage.records import RunRecord
from storage.repository import Repository

log = logging.getLogger(__name__)

MANIFEST = "modelsmith.json"
FORMAT = "modelsmith-model"
# Files of a model folder worth shipping; none of these formats can hold a pickle.
MODEL_SUFFIXES = (".safetensors", ".json", ".txt", ".md", ".model")
LEFT_OUT = {"train.log"}
DEFAULT_MAX_IMPORT_MB = 2048
DEFAULT_MAX_IMPORT_FILES = 200
DEFAULT_MAX_IMPORT_PARAMS = 1_000_000_000
# What an imported model may keep: weights, configs, tokenizer files, card, run config and metrics.
# Anything else (a hundred padding .json files, say) is left out, however it is named.
IMPORTED_FILES = frozenset({
    "model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
    "sentencepiece.bpe.model", "tokenizer.model", "README.md", "run_config.json", "metrics.json", "modelsmith.json",
    "modelsmith_image.json", "preprocessor_config.json"})  # an image model's labels/normalisation, its processor
MAX_METADATA_BYTES = 64 * 1024 * 1024  # all kept files but the weights together (a big tokenizer.json is ~20 MB)
WEIGHTS_PER_CONFIG = 4  # config.json may describe at most this many times the parameters the weights hold
COPY_CHUNK = 1 << 20
IMPORT_PREFIX = ".import-"
MAC_METADATA = "__MACOSX/"  # resource forks macOS's Finder adds to zips


@dataclass(frozen=True)
class ExportResult:
    """A written archive or folder and the files in it (relative paths)."""

    path: Path
    format: str
    files: list[str]


@dataclass(frozen=True)
class ImportLimits:
    """How big an archive may get once unpacked."""

    max_bytes: int = DEFAULT_MAX_IMPORT_MB * 1024 * 1024
    max_files: int = DEFAULT_MAX_IMPORT_FILES
    max_params: int = DEFAULT_MAX_IMPORT_PARAMS  # of the model config.json describes, checked before it is built


@dataclass(frozen=True)
class ImportResult:
    """The run an import created, the archive members it left out and notes for the user."""

    run: RunRecord
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # class names of a classifier; [] for a language model


def import_limits(settings) -> ImportLimits:
    """The import limits of these Settings (MODELSMITH_MAX_IMPORT_MB, MODELSMITH_MAX_IMPORT_FILES)."""
    return ImportLimits(max_bytes=int(settings.max_import_mb * 1024 * 1024), max_files=int(settings.max_import_files),
                        max_params=int(settings.max_import_params))


# --- export --------------------------------------------------------------------------------------

def model_folder(run: RunRecord) -> Path:
    """The folder of a succeeded run's model; UserError when there is none to export."""
    if run.status != "succeeded":
        raise UserError(f"Run #{run.id} is {run.status}; only a succeeded run has a model to export. "
                        "Pick a run that finished training.")
    folder = Path(run.output_dir or "")
    weights = get_task(run.task).weights_files
    if not run.output_dir or not any((folder / name).is_file() for name in weights):
        raise UserError(f"Run #{run.id} has no {' or '.join(weights)} in {folder}; its files were moved or deleted. "
                        "Train it again, or import the model from a zip.")
    return folder


def model_files(folder: Path) -> list[Path]:
    """The top-level files of a model folder that belong in an export, sorted by name."""
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and not path.is_symlink() and path.suffix in MODEL_SUFFIXES
                  and not path.name.startswith(".") and path.name not in LEFT_OUT and path.name != MANIFEST)


def manifest(run: RunRecord) -> dict:
    """What modelsmith.json says about the exported run."""
    return {"format": FORMAT, "version": 1, "name": run.name, "task": run.task, "template": run.template,
            "run_id": run.id, "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def export_name(run: RunRecord, suffix: str = "") -> str:
    """A file-system-safe name for an export of `run`: <name>-run<id><suffix>."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.name).strip("-.")[:60] or "model"
    return f"{slug}-run{run.id}{suffix}"


def resolve_out(out: Path | str, default_name: str) -> Path:
    """`out` itself, or `out/default_name` when `out` is a folder: an existing one, or a path
    written with a trailing slash (`downloads/`), which is created if needed."""
    # Check the text before Path() drops the trailing separator that says "a folder".
    is_folder = str(out).endswith(("/", os.sep))
    out = Path(out).expanduser()
    return out / default_name if is_folder or out.is_dir() else out


def export_zip(run: RunRecord, out: Path | str) -> ExportResult:
    """Write the run's model as a zip at `out` (a file, or a folder to put <name>-run<id>.zip in)."""
    folder = model_folder(run)
    target = resolve_out(out, export_name(run, ".zip"))
    target.parent.mkdir(parents=True, exist_ok=True)
    files = model_files(folder)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:  # written aside, then renamed: a reader never sees half an archive
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.name)
            archive.writestr(MANIFEST, json.dumps(manifest(run), indent=2))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    names = [path.name for path in files] + [MANIFEST]
    log.info("exported run %d to %s (%d files)", run.id, target, len(names))
    return ExportResult(path=target, format="zip", files=sorted(names))


def copy_model_files(run: RunRecord, target: Path) -> list[str]:
    """Copy what a model zip holds (model files + modelsmith.json) into the folder `target`; their names."""
    folder = model_folder(run)
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for path in model_files(folder):
        shutil.copyfile(path, target / path.name)  # copyfile: never a link back into the run folder
        names.append(path.name)
    (target / MANIFEST).write_text(json.dumps(manifest(run), indent=2), encoding="utf-8")
    return sorted(names + [MANIFEST])


# --- import: check the archive ------------------------------------------------------------------

def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _unsafe_reason(name: str) -> str | None:
    """Why an archive member name could write outside the target folder, or None when it is safe."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        return "an absolute path"
    if ".." in normalised.split("/"):
        return "a '..' path"
    if "\x00" in name:
        return "a NUL byte in its name"
    return None


def check_archive(archive: zipfile.ZipFile, limits: ImportLimits) -> list[zipfile.ZipInfo]:
    """The archive's file members; UserError for any unsafe member or when it is too big."""
    members = archive.infolist()
    for info in members:
        reason = _unsafe_reason(info.filename)
        if reason is None and _is_symlink(info):
            reason = "a symbolic link"
        if reason:
            raise UserError(f"The archive is refused: member '{info.filename[:200]}' is {reason}. "
                            "Export the model again with Modelsmith, or zip the model folder's files themselves.")
    files = [info for info in members if not info.is_dir()]
    if len(files) > limits.max_files:
        raise UserError(f"The archive is refused: it holds {len(files)} files; at most {limits.max_files} "
                        "are accepted. "
                        "Zip only the model folder (weights, config and tokenizer files).")
    total = sum(info.file_size for info in files)
    if total > limits.max_bytes:
        raise UserError(f"The archive is refused: it unpacks to {total / 1e6:,.1f} MB; the limit is "
                        f"{limits.max_bytes / 1e6:,.1f} MB "
                        "(MODELSMITH_MAX_IMPORT_MB). Zip only the model files, or raise the limit.")
    return files


def _common_folder(names: list[str]) -> str:
    """The single top folder every member sits in ('' when there is none): a zipped model folder."""
    tops = {PurePosixPath(name.replace("\\", "/")).parts[0] for name in names}
    if len(tops) == 1 and all("/" in name.replace("\\", "/") for name in names):
        return tops.pop() + "/"
    return ""


def select_members(files: list[zipfile.ZipInfo]) -> tuple[dict[str, zipfile.ZipInfo], list[str]]:
    """{file name: member} of the model files to unpack, and the members left out (folders, pickles...)."""
    skipped = [info.filename for info in files if info.filename.startswith(MAC_METADATA)]
    files = [info for info in files if not info.filename.startswith(MAC_METADATA)]
    prefix = _common_folder([info.filename for info in files]) if files else ""
    chosen: dict[str, zipfile.ZipInfo] = {}
    for info in files:
        relative = info.filename.replace("\\", "/")[len(prefix):]
        if "/" in relative or relative not in _importable_files() or relative in chosen:
            skipped.append(info.filename)
        else:
            chosen[relative] = info
    if not any(set(task.model_files) <= set(chosen) and set(task.weights_files) & set(chosen)
               for task in list_tasks()):
        pickles = [name for name in skipped if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
        hint = (" It holds PyTorch pickle weights, which are never loaded (they can run code): save the model "
                "with safetensors (`model.save_pretrained(folder)` does) and zip it again.") if pickles else ""
        raise UserError("The archive has no model.safetensors and config.json at its top level (or in one folder); "
                        "a table model needs template.json and preprocessing.json with model.txt or "
                        "model.safetensors."
                        f"{hint} Export a run with Modelsmith, or zip a Hugging Face model folder.")
    weights = _weight_names()
    metadata = sum(info.file_size for name, info in chosen.items() if name not in weights)
    if metadata > MAX_METADATA_BYTES:
        raise UserError(f"The archive is refused: its config, tokenizer and card files hold {metadata / 1e6:,.1f} MB; "
                        f"a model needs at most {MAX_METADATA_BYTES / 1e6:,.0f} MB of them. Zip the model folder "
                        "as save_pretrained wrote it.")
    return chosen, skipped


def _importable_files() -> frozenset[str]:
    """IMPORTED_FILES and the files every task's models are made of (a table model's preprocessing.json...)."""
    return IMPORTED_FILES.union(*(set(task.model_files) | set(task.weights_files) for task in list_tasks()))


def _weight_names() -> frozenset[str]:
    """Files that hold a model's weights (bounded by the import size, not the metadata limit)."""
    return frozenset().union(*(task.weights_files for task in list_tasks()))


def _unpack(archive: zipfile.ZipFile, chosen: dict[str, zipfile.ZipInfo], target: Path, max_bytes: int) -> None:
    """Copy the chosen members into `target`, counting real bytes (headers can lie about sizes)."""
    written = metadata = 0
    weights = _weight_names()
    for name, info in chosen.items():
        destination = target / name
        if destination.resolve().parent != target.resolve():  # belt and braces after check_archive
            raise UserError(f"The archive is refused: member '{info.filename[:200]}' leaves the import folder.")
        with archive.open(info) as source, open(destination, "wb") as sink:
            while chunk := source.read(COPY_CHUNK):
                written += len(chunk)
                metadata += len(chunk) if name not in weights else 0
                if written > max_bytes:
                    raise UserError(f"The archive unpacks to more than {max_bytes / 1e6:,.1f} MB "
                                    "(MODELSMITH_MAX_IMPORT_MB); it is refused.")
                if metadata > MAX_METADATA_BYTES:
                    raise UserError(f"The archive is refused: its config, tokenizer and card files unpack to more "
                                    f"than {MAX_METADATA_BYTES / 1e6:,.0f} MB.")
                sink.write(chunk)


# --- import: bound the model's size before anything is built ------------------------------------

WIDTH_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "embedding_dim", "embed_dim")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
FFN_KEYS = ("intermediate_size", "n_inner", "ffn_dim", "hidden_dim", "encoder_ffn_dim")
POSITION_KEYS = ("max_position_embeddings", "n_positions")
EXPERT_KEYS = ("num_local_experts", "num_experts")


def _whole(config: dict, keys: tuple[str, ...], default: int = 0) -> int:
    """The largest whole-number value among `keys` (top level or the Modelsmith template); UserError if not a number."""
    found = default
    for source in (config, config.get("template") if isinstance(config.get("template"), dict) else {}):
        for key in keys:
            value = source.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"config.json in the archive has {key} = {shorten(repr(value), 40)}; it must be a "
                                "whole number of 0 or more. The archive is not a usable model folder.")
            found = max(found, value)
    return found


def estimated_parameters(config: dict) -> int:
    """About how many parameters the model config.json describes has (a transformer's or LSTM's count, generous).

    Computed from the numbers alone, so an absurd config costs nothing: embeddings (vocab x width),
    positions, and per layer attention (4 width^2) plus the feed-forward block (2 width x ffn, per expert).
    """
    width = _whole(config, WIDTH_KEYS, 1)
    ffn = _whole(config, FFN_KEYS) or 4 * width
    experts = max(1, _whole(config, EXPERT_KEYS))
    labels = max(len(config.get("labels") or []), len(config.get("id2label") or {}), _whole(config, ("num_labels",)))
    per_layer = 4 * width * width + 2 * width * ffn * experts
    return (_whole(config, ("vocab_size",)) * width + _whole(config, POSITION_KEYS) * width
            + max(1, _whole(config, LAYER_KEYS, 1)) * per_layer + labels * width)


def stored_parameters(weights: Path) -> int:
    """How many numbers model.safetensors holds, from its header alone (nothing is loaded)."""
    from safetensors import safe_open

    total = 0
    try:
        with safe_open(str(weights), framework="np") as handle:
            for key in handle.keys():
                count = 1
                for size in handle.get_slice(key).get_shape():
                    count *= int(size)
                total += count
    except Exception as exc:  # safetensors' own errors for a damaged header
        raise UserError(f"The model in the archive could not be loaded: model.safetensors is damaged "
                        f"({shorten(exc, 200)}). Export or save the model again.") from exc
    return total


def check_model_size(folder: Path, max_params: int) -> None:
    """Refuse a model too big to build, or whose config.json describes far more than its weights hold."""
    if not (folder / "config.json").is_file():  # a table model: no architecture to describe, its weights bound it
        stored = stored_parameters(folder / "model.safetensors") if (folder / "model.safetensors").is_file() else 0
        if stored > max_params:
            raise UserError(f"The model is too big to import: its weights hold {stored:,} parameters; the limit is "
                            f"{max_params:,} (MODELSMITH_MAX_IMPORT_PARAMS).")
        return
    config = _read_json(folder / "config.json")
    if config is None:
        raise UserError("config.json in the archive is not a JSON object; it is not a model folder.")
    described = estimated_parameters(config)
    stored = stored_parameters(folder / "model.safetensors")
    if max(described, stored) > max_params:
        raise UserError(f"The model is too big to import: config.json describes about {described:,} parameters "
                        f"and the weights hold {stored:,}; the limit is {max_params:,} (MODELSMITH_MAX_IMPORT_PARAMS).")
    if described > WEIGHTS_PER_CONFIG * stored + 1_000_000:
        raise UserError(f"config.json describes a model of about {described:,} parameters, but model.safetensors "
                        f"holds only {stored:,}: the two files do not belong together. Zip the model folder again.")


# --- import: describe and record the model ------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def describe_model(folder: Path, name: str) -> tuple[TrainConfig, str, list[str]]:
    """(config, config JSON to store, notes) of an unpacked model folder.

    A Modelsmith export carries run_config.json; a bare folder gets a minimal config inferred
    from config.json. Either way its dataset_id is None: the dataset the model was trained on
    (an id in another database, if any) is not here, and Clone must not pick an unrelated one.
    """
    notes: list[str] = []
    run_config = folder / "run_config.json"
    if run_config.is_file():
        text = run_config.read_text(encoding="utf-8")
        try:
            config = TrainConfig.model_validate_json(text).model_copy(update={"dataset_id": None})
            return config, config.model_dump_json(), notes
        except ValidationError as exc:
            notes.append(f"run_config.json does not fit this version of Modelsmith ({exc.error_count()} "
                         "problem(s)); the settings were inferred from config.json instead.")
    model_config = _read_json(folder / "config.json")
    if model_config is None:
        raise UserError("config.json in the archive is not a JSON object; it is not a model folder.")
    config = _infer_config(model_config, name)
    notes.append(f"No run config: inferred a {config.template.kind} {config.task} model from config.json.")
    return config, config.model_dump_json(), notes


def _infer_config(model_config: dict, name: str) -> TrainConfig:
    """The config of a model folder without run_config.json: the first task that recognises its config.json.

    An imported model has no dataset here (dataset_id None)."""
    origin = model_config.get("_name_or_path")
    origin = origin if isinstance(origin, str) and origin and not origin.startswith(("/", ".")) else "imported"
    for task in list_tasks():
        try:
            settings = task.infer_settings(model_config, origin)
            if settings is not None:
                return TrainConfig(name=name[:200], dataset_id=None, task=task.name, **settings)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"config.json of this Modelsmith model is damaged ({exc}); export the run again.") from exc
    architectures = [str(a) for a in model_config.get("architectures") or []]
    raise UserError(f"config.json describes a {', '.join(architectures) or 'model without architectures'}; "
                    "Modelsmith imports text classifiers (…ForSequenceClassification), language models "
                    "(…ForCausalLM) and image classifiers (…ForImageClassification), or its own exports.")


def model_labels(folder: Path) -> list[str]:
    """The class names in a model folder's config.json (Modelsmith's LSTM or Hugging Face id2label); [] if none."""
    config = _read_json(Path(folder) / "config.json") or {}
    if isinstance(config.get("labels"), list):
        return [str(label) for label in config["labels"]]
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        return []
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]


def check_loads(folder: Path, task: str) -> None:
    """Load the model once from safetensors (no cache), so a broken archive fails before it is recorded."""
    from backend.serving.startup import load_model_stack

    load_model_stack()  # one thread at a time imports torch and transformers
    try:
        get_task(task).load_model(folder)
    except UserError:
        raise
    except Exception as exc:  # any library error: the archive is not a model we can use
        log.info("imported model does not load", exc_info=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"The model in the archive could not be loaded ({first}). "
                        "Check that it is a complete model folder with model.safetensors.") from exc


def _ensure_card(folder: Path, name: str, archive_name: str) -> None:
    if not (folder / "README.md").is_file():
        (folder / "README.md").write_text(f"# {name}\n\nImported into Modelsmith from `{archive_name}`.\n",
                                          encoding="utf-8")


def _placer(staging: Path, runs_dir: Path):
    def place(run_id: int) -> str:
        target = runs_dir / str(run_id)
        if target.exists():  # a leftover folder of a deleted run: never mix files
            target = runs_dir / f"{run_id}-{secrets.token_hex(3)}"
        staging.rename(target)
        return str(target)

    return place


def import_model(archive_path: Path, repo: Repository, runs_dir: Path, *, name: str | None = None,
                 limits: ImportLimits = ImportLimits()) -> ImportResult:
    """Import a model zip as a succeeded run (no dataset); nothing is left behind when it fails."""
    archive_path = Path(archive_path)
    if not archive_path.is_file() or not zipfile.is_zipfile(archive_path):
        raise UserError(f"'{archive_path.name}' is not a zip archive. Upload a zip made by Modelsmith's "
                        "Download, or a zip of a Hugging Face model folder.")
    runs_dir.mkdir(parents=True, exist_ok=True)
    staging = runs_dir / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
    try:
        with zipfile.ZipFile(archive_path) as archive:
            chosen, skipped = select_members(check_archive(archive, limits))
            staging.mkdir()
            _unpack(archive, chosen, staging, limits.max_bytes)
        check_model_size(staging, limits.max_params)  # before any model is built from config.json
        info = _read_json(staging / MANIFEST) or {}
        default_name = str(info.get("name") or archive_path.stem)
        config, config_json, notes = describe_model(staging, (name or "").strip() or default_name)
        run_name = (name or "").strip() or config.name or default_name
        check_loads(staging, config.task)
        (staging / MANIFEST).unlink(missing_ok=True)
        _ensure_card(staging, run_name, archive_path.name)
        metrics = _read_json(staging / "metrics.json") or {}
        run = repo.add_imported_run(name=run_name, task=config.task, template=config.template.kind,
                                    config_json=config_json, metrics=metrics, place=_placer(staging, runs_dir),
                                    imported_from=archive_path.name)
    except zipfile.BadZipFile as exc:
        raise UserError(f"'{archive_path.name}' is a damaged zip archive ({exc}). Download or zip it again.") from exc
    except (RuntimeError, NotImplementedError) as exc:  # zipfile's words for encrypted / unknown compression
        raise UserError(f"'{archive_path.name}' could not be unpacked ({exc}). Zip the model folder again "
                        "without a password, with ordinary (deflate) compression.") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # renamed away on success: nothing to remove then
    if skipped:
        notes.append(f"Left out {len(skipped)} file(s) a model does not need or that could hold pickles: "
                     f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}.")
    log.info("imported %s as run %d", archive_path.name, run.id)
    labels = model_labels(Path(run.output_dir or "")) if get_task(run.task).exports_labels else []
    return ImportResult(run=run, skipped=skipped, notes=notes, labels=labels)
