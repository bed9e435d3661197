"""The model card (README.md) of an image classifier: what it does, on what data, how good, how to use."""

from __future__ import annotations

from backend.config import TrainConfig
from backend.sharing.model_card import classification_metrics_section, front_matter, training_section
from backend.tasks.image_classification.task import TASK
from storage.records import DatasetRecord

TEMPLATE_NAMES = {"cnn": "convolutional network trained from scratch",
                  "efficientnet-lite0": "EfficientNet-Lite0 (pretrained on ImageNet), fine-tuned",
                  "vit": "pretrained vision model, fine-tuned"}
HUGGING_FACE_KINDS = ("vit",)  # saved as a transformers folder; the others as a plain state dict


def render_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                stop_reason: str = "completed") -> str:
    """Model card of an image classifier: front matter, data, settings, validation metrics, usage."""
    kind = config.template.kind
    hugging_face = kind in HUGGING_FACE_KINDS
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
    if kind == "efficientnet-lite0":
        lines += efficientnet_usage(config.template.input_size, len(dataset.labels))
    lines += ["With Modelsmith (in this project):", "", "```python",
              "from backend.tasks.image_classification.predictor import load_image_predictor", "",
              'predictor = load_image_predictor("path/to/this/folder")',
              'print(predictor.predict_files([open("photo.jpg", "rb").read()]))  # [{"label": ..., "scores": {...}}]',
              "```", ""]
    return "\n".join(lines)


def efficientnet_usage(input_size: int, num_labels: int) -> list[str]:
    """How to load an EfficientNet-Lite0 with plain PyTorch (`pip install efficientnet-lite-pytorch`)."""
    return ["With plain PyTorch (`pip install torch safetensors pillow efficientnet-lite-pytorch==0.1.0`; "
            "licence Apache-2.0, as the ImageNet weights it started from):", "",
            "```python", "import json", "", "import numpy as np", "import torch",
            "from efficientnet_lite_pytorch import EfficientNet", "from PIL import Image",
            "from safetensors.torch import load_file", "",
            'meta = json.load(open("modelsmith_image.json"))',
            f'network = EfficientNet.from_name("efficientnet-lite0", image_size={input_size}, num_classes={num_labels})',
            'network.load_state_dict(load_file("model.safetensors"))', "network.eval()",
            'image = Image.open("photo.jpg").convert("RGB").resize((meta["input_size"],) * 2, Image.BILINEAR)',
            "pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]",
            'mean, std = (torch.tensor(meta[key]).view(1, 3, 1, 1) for key in ("mean", "std"))',
            "with torch.no_grad():",
            "    probabilities = network((pixels - mean) / std).softmax(-1)[0]",
            'print(meta["labels"][int(probabilities.argmax())], float(probabilities.max()))', "```", ""]
