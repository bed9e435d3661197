"""The model card (README.md) of a text classifier: what it does, on what data, how good, how to use."""

from __future__ import annotations

from backend.config import TrainConfig
from backend.sharing.model_card import front_matter, settings_rows
from backend.tasks.text_classification.task import TASK
from storage.records import DatasetRecord

TEMPLATE_NAMES = {
    "transformer": "Transformer (fine-tuned pretrained encoder)",
    "transformer-scratch": "Transformer trained from scratch",
    "lstm": "LSTM trained from scratch",
}


def render_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                      stop_reason: str = "completed") -> str:
    """Model card of a classifier: front matter, data, settings, validation metrics, usage."""
    kind = config.template.kind
    hugging_face = kind != "lstm"
    front = front_matter(hugging_face, TASK.pipeline_tag, kind)
    lines = [*front, f"# {config.name or dataset.name + ' classifier'}", "",
             f"A {TEMPLATE_NAMES.get(kind, kind)} that sorts texts into {len(dataset.labels)} classes: "
             f"{', '.join(f'`{label}`' for label in dataset.labels)}.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** ({dataset.train_rows} training rows, "
             f"{dataset.validation_rows} validation rows)",
             f"- Columns: text from `{dataset.text_column}`, label from `{dataset.label_column}`", "",
             "## Training", "",
             f"- Best model from step {best_step}, chosen by {TASK.best_metric_label}; training ended: "
             f"{stop_reason.replace('_', ' ')}", "",
             "| setting | value |", "|---|---|"]
    lines += settings_rows(config)
    lines += ["", "## Validation metrics", "", "| metric | value |", "|---|---|"]
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "loss"):
        if key in metrics:
            lines.append(f"| {key} | {metrics[key]:.4f} |")
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
                  for label, row in per_class.items()]
    lines += ["", "## How to use", ""]
    if hugging_face:
        lines += ["With Hugging Face transformers:", "", "```python", "from transformers import pipeline", "",
                  'classifier = pipeline("text-classification", model="path/to/this/folder")',
                  f'print(classifier(["some text"], truncation=True, max_length={config.max_length}))', "```", ""]
    lines += ["With Modelsmith (in this project):", "", "```python", "from backend.tasks.text_classification.predictor import load_predictor", "",
              'predictor = load_predictor("path/to/this/folder")',
              'print(predictor.predict(["some text"]))  # [{"label": ..., "scores": {label: probability}}]',
              "```", ""]
    return "\n".join(lines)
