"""The model card (README.md) of a text classifier: what it does, on what data, how good, how to use."""

from __future__ import annotations

from backend.config import TrainConfig
from backend.sharing.model_card import classification_metrics_section, front_matter, training_section
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
             *training_section(config, TASK.best_metric_label, best_step, stop_reason), "",
             *classification_metrics_section(metrics), "",
             "## How to use", ""]
    if hugging_face:
        lines += ["With Hugging Face transformers:", "", "```python", "from transformers import pipeline", "",
                  'classifier = pipeline("text-classification", model="path/to/this/folder")',
                  f'print(classifier(["some text"], truncation=True, max_length={config.max_length}))', "```", ""]
    lines += ["With Modelsmith (in this project):", "", "```python", "from backend.tasks.text_classification.predictor import load_predictor", "",
              'predictor = load_predictor("path/to/this/folder")',
              'print(predictor.predict(["some text"]))  # [{"label": ..., "scores": {label: probability}}]',
              "```", ""]
    return "\n".join(lines)
