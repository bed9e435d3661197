"""The model card (README.md) written next to a trained model; each task writes its own, with these parts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from backend.config import TrainConfig
from backend.tasks.registry import get_task
from storage.records import DatasetRecord


def front_matter(hugging_face: bool, pipeline_tag: str, kind: str) -> list[str]:
    """The card's YAML front matter (the Hub reads library, pipeline and tags from it), as lines."""
    return ["---", f"library_name: {'transformers' if hugging_face else 'pytorch'}",
            f"pipeline_tag: {pipeline_tag}", "tags:", "- modelsmith", f"- {kind}", "---", ""]


def settings_rows(config: TrainConfig) -> list[str]:
    """The settings table's rows: every training setting, then the template's as template.<name>."""
    settings = config.model_dump(exclude={"template", "name", "dataset_id", "task"})
    settings.update({f"template.{key}": value for key, value in config.template.model_dump().items()})
    return [f"| {key} | {value} |" for key, value in settings.items()]


def training_section(config: TrainConfig, best_metric_label: str, best_step: int, stop_reason: str) -> list[str]:
    """The card's Training section: which step's model it is, why training ended, and every setting."""
    return ["## Training", "",
            f"- Best model from step {best_step}, chosen by {best_metric_label}; training ended: "
            f"{stop_reason.replace('_', ' ')}", "",
            "| setting | value |", "|---|---|", *settings_rows(config)]


def metrics_section(metrics: dict, rows: Sequence[tuple[str, str]]) -> list[str]:
    """The card's Validation metrics table: one row per (metric key, label) that `metrics` holds."""
    return ["## Validation metrics", "", "| metric | value |", "|---|---|",
            *(f"| {label} | {metrics[key]:.4f} |" for key, label in rows if key in metrics)]


CLASSIFICATION_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "loss")


def classification_metrics_section(metrics: dict) -> list[str]:
    """A classifier's Validation metrics: the overall scores, then precision / recall / F1 per class."""
    lines = metrics_section(metrics, [(key, key) for key in CLASSIFICATION_METRICS])
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
                  for label, row in per_class.items()]
    return lines


def render_model_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                      stop_reason: str = "completed") -> str:
    """Markdown model card with front matter, settings, metrics and usage, as the run's task writes it."""
    return get_task(config.task).render_card(config, dataset, metrics, best_step=best_step, stop_reason=stop_reason)


def write_model_card(output_dir: Path, config: TrainConfig, dataset: DatasetRecord, metrics: dict, *,
                     best_step: int = 0, stop_reason: str = "completed") -> Path:
    """Write README.md into `output_dir` and return its path."""
    path = Path(output_dir) / "README.md"
    path.write_text(render_model_card(config, dataset, metrics, best_step=best_step, stop_reason=stop_reason),
                    encoding="utf-8")
    return path
