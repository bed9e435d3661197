"""The model card (README.md) of an image classifier: what it does, on what data, how good, how to use."""

from __future__ import annotations

from backend.config import TrainConfig
from backend.sharing.model_card import classification_metrics_section, front_matter, training_section
from backend.tasks.image_classification.task import TASK
from storage.records import DatasetRecord

TEMPLATE_NAMES = {"cnn": "convolutional network trained from scratch",
                  "vit": "pretrained vision model, fine-tuned"}


def render_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                stop_reason: str = "completed") -> str:
    """Model card of an image classifier: front matter, data, settings, validation metrics, usage."""
    kind = config.template.kind
    hugging_face = kind != "cnn"
    lines = [*front_matter(hugging_face, TASK.pipeline_tag, kind), f"# {config.name or dataset.name + ' classifier'}",
             "", f"A {TEMPLATE_NAMES.get(kind, kind)} that sorts images into {len(dataset.labels)} classes: "
             f"{', '.join(f'`{label}`' for label in dataset.labels)}.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** ({dataset.train_rows} training images, "
             f"{dataset.validation_rows} validation images)", "",
             *training_section(config, TASK.best_metric_label, best_step, stop_reason), "",
             *classification_metrics_section(metrics), "",
             "## How to use", ""]
    if hugging_face:
        lines += ["With Hugging Face transformers:", "", "```python", "from transformers import pipeline", "",
                  'classifier = pipeline("image-classification", model="path/to/this/folder")',
                  'print(classifier("photo.jpg"))', "```", ""]
    else:
        lines += ["The weights are `model.safetensors` (the network's state dict); `modelsmith_image.json` holds the "
                  "labels, the input size and the normalisation (mean, std) the network expects on [0, 1] pixels.", ""]
    lines += ["With Modelsmith (in this project):", "", "```python",
              "from backend.tasks.image_classification.predictor import load_image_predictor", "",
              'predictor = load_image_predictor("path/to/this/folder")',
              'print(predictor.predict_files([open("photo.jpg", "rb").read()]))  # [{"label": ..., "scores": {...}}]',
              "```", ""]
    return "\n".join(lines)
