"""The classifier every image template gives: a network plus the normalisation it was trained with.

    pixels (B, 3, S, S) float in [0, 1] -> (x - mean) / std -> network -> logits (B, classes)

Normalisation lives inside the model (as buffers) so that training, evaluation, prediction and
an exported model cannot disagree about it; augmentation happens before it, on [0, 1] pixels.
Saved as model.safetensors plus modelsmith_image.json (template, labels, input size, mean, std);
a `vit` model also keeps Hugging Face's config.json and preprocessor_config.json, so
`transformers.pipeline("image-classification", model=folder)` loads it; the `cnn` and
`efficientnet-lite0` networks save their plain state dict and a config.json naming their kind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from pydantic import TypeAdapter
from safetensors.torch import load_file, save_file
from torch import nn

from backend.errors import UserError
from backend.tasks.image_classification.config import CnnTemplate, EfficientNetLiteTemplate, ImageTemplate

log = logging.getLogger(__name__)

META_FILE = "modelsmith_image.json"
WEIGHTS_FILE = "model.safetensors"
CNN_KIND = "modelsmith-image-cnn"  # config.json's model_kind of a saved CNN
# config.json's model_kind of the templates saved as a plain state dict (not a transformers folder).
STATE_DICT_KINDS = {"cnn": CNN_KIND, "efficientnet-lite0": "modelsmith-image-efficientnet-lite0"}
_TEMPLATE = TypeAdapter(ImageTemplate)


class ImageClassifier(nn.Module):
    """A network with its labels, input size and normalisation; forward takes [0, 1] pixels."""

    def __init__(self, network: nn.Module, template, labels: list[str], input_size: int,
                 mean: list[float], std: list[float], processor=None):
        super().__init__()
        self.network = network
        self.template = template
        self.labels = list(labels)
        self.input_size = int(input_size)
        self.processor = processor  # a pretrained model's image processor, saved beside it; None for the CNN
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self._logits(pixels)
        # Evaluation and prediction alike (the model is in eval mode for both), so they cannot disagree.
        if not self.training and getattr(self.template, "test_time_flip", False):
            logits = (logits + self._logits(pixels.flip(-1))) / 2
        return logits

    def _logits(self, pixels: torch.Tensor) -> torch.Tensor:
        normalised = (pixels - self.mean) / self.std
        if self.template.kind in STATE_DICT_KINDS:  # a plain torch network: logits out
            return self.network(normalised)
        return self.network(pixel_values=normalised).logits

    def metadata(self) -> dict:
        """What modelsmith_image.json holds."""
        return {"task": "image-classification", "template": self.template.model_dump(), "labels": self.labels,
                "input_size": self.input_size, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist()}


def save_classifier(model: ImageClassifier, folder: Path) -> None:
    """Write the model's weights (safetensors) and metadata into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model.template.kind in STATE_DICT_KINDS:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.network.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        # config.json, as every model folder has one: an import reads the labels and the kind from it.
        (folder / "config.json").write_text(json.dumps({"model_kind": STATE_DICT_KINDS[model.template.kind],
                                                        "labels": model.labels,
                                                        "template": model.template.model_dump()}, indent=2,
                                                       ensure_ascii=False), encoding="utf-8")
    else:
        model.network.save_pretrained(folder, safe_serialization=True)
        if model.processor is not None:
            model.processor.save_pretrained(folder)
    (folder / META_FILE).write_text(json.dumps(model.metadata(), indent=2, ensure_ascii=False), encoding="utf-8")


def build_pretrained(template, labels: list[str]) -> ImageClassifier:
    """A pretrained model with a new head for `labels`, wrapped with its processor's size and normalisation
    (EfficientNet-Lite0: the bundled ImageNet backbone, the template's input size, its [-1, 1] scaling)."""
    if isinstance(template, EfficientNetLiteTemplate):
        from backend.tasks.image_classification.efficientnet import MEAN, STD, pretrained_network

        return ImageClassifier(pretrained_network(template, len(labels)), template, labels, template.input_size,
                               MEAN, STD)
    from backend.tasks.image_classification.pretrained import new_head_network, processor_settings

    network, processor = new_head_network(template, labels)
    size, mean, std = processor_settings(processor)
    return ImageClassifier(network, template, labels, size, mean, std, processor=processor)


def load_classifier(folder: Path) -> ImageClassifier:
    """A classifier saved by save_classifier, in eval mode on the CPU; UserError when files are missing."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UserError(f"{folder} holds no saved image model ({META_FILE} and {WEIGHTS_FILE} are needed). "
                        "Pick the folder of a finished image-classification run.")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta["template"].get("kind") == "cnn":  # saved before the setting existed: predict as it was evaluated
        meta["template"].setdefault("test_time_flip", False)
    template = _TEMPLATE.validate_python(meta["template"])
    if isinstance(template, CnnTemplate):
        from backend.tasks.image_classification.cnn import Cnn

        network = Cnn(template, len(meta["labels"]))
        network.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        processor = None
    elif isinstance(template, EfficientNetLiteTemplate):
        from backend.tasks.image_classification.efficientnet import new_network

        network = new_network(template, len(meta["labels"]))  # the architecture only: the weights are the run's
        network.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        processor = None
    else:
        from backend.tasks.image_classification.pretrained import load_network

        network, processor = load_network(folder)
    model = ImageClassifier(network, template, meta["labels"], meta["input_size"], meta["mean"], meta["std"],
                            processor=processor)
    return model.eval()
