"""A run config as a file (save, load) and as the equivalent `python app.py train` command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pydantic import ValidationError

from backend.config import TrainConfig, default_config
from backend.errors import UserError

MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes; anything larger is not one


def cli_command(config: TrainConfig) -> str:
    """`python app.py train --dataset N --template K --set key=value ...` with only what differs from the defaults."""
    defaults = default_config(config.dataset_id, config.template.kind, config.task).model_dump()
    values = config.model_dump()
    parts = ["python", "app.py", "train", "--dataset", str(config.dataset_id), "--template", config.template.kind]
    for key, value in values.items():
        if key not in ("template", "dataset_id", "task") and value != defaults[key]:
            parts += ["--set", f"{key}={_text(value)}"]
    for key, value in values["template"].items():
        if key != "kind" and value != defaults["template"][key]:
            # a template field that shares a name with a run field must be spelled template.<name>
            name = f"template.{key}" if key in values else key
            parts += ["--set", f"{name}={_text(value)}"]
    return " ".join(shlex.quote(part) for part in parts)


def _text(value) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def save_config(config: TrainConfig, folder: Path) -> Path:
    """Write the config as `<name or template>-config.json` in `folder`; returns the file."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in (config.name or config.template.kind))[:60]
    path = Path(folder) / f"{stem or 'run'}-config.json"
    path.write_text(json.dumps(config.model_dump(mode="json"), indent=2), encoding="utf-8")
    return path


def load_config(path: Path) -> TrainConfig:
    """Read a saved config; UserError saying what is wrong with a file that is not one."""
    path = Path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path.name} is {path.stat().st_size:,} bytes: not a run config. "
                        "Load a file saved with *Save config* (a small .json file).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path.name} is not a JSON file ({exc}). Load a file saved with *Save config*.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path.name} holds a JSON {type(data).__name__}, not a run config. "
                        "Load a file saved with *Save config*.")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path.name} is not a valid run config: {problems}. Fix the file or save it again.") from None
