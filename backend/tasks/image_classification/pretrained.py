"""The `vit` template: fine-tune a transformers image-classification model with a fresh head.

Any `AutoModelForImageClassification` folder or Hub id works (ViT, ConvNeXt, ResNet, Swin, ...):
the head is replaced for the dataset's labels (`ignore_mismatched_sizes`), the input size and
normalisation come from the model's own image processor. Weights load from safetensors only and
remote code is never trusted. Without network a Hub id that is not in the local cache fails with
a message saying so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from backend.errors import UserError
from backend.tasks.image_classification.config import PretrainedImageTemplate

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DEFAULT_INPUT_SIZE = 224
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def resolve_source(base_model: str) -> str:
    """A local folder (resolved) or the Hub id unchanged; UserError for a path that does not exist."""
    name = base_model.strip()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if not HUB_ID.match(name):
        raise UserError(f"Base model '{base_model}' is not a folder on this machine. Give the path of a Hugging "
                        "Face image-classification model folder, or a Hub id such as google/vit-base-patch16-224.")
    return name


def new_head_network(template: PretrainedImageTemplate, labels: list[str]):
    """The base model with a new head for `labels`, and its image processor: (network, processor).

    model.build_pretrained wraps them (this module does not import model.py, which loads through it)."""
    source = resolve_source(template.base_model)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"Base model '{template.base_model}' could not be loaded: it is not a local folder and is not in "
            f"the Hugging Face cache, and there is no network ({str(exc).splitlines()[0][:200]}). Download it "
            "on a machine with network (huggingface-cli download ...) and give its folder, or use the "
            "from-scratch 'cnn' template.") from exc
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: index for index, label in enumerate(labels)}
    try:
        network = AutoModelForImageClassification.from_pretrained(
            source, config=config, ignore_mismatched_sizes=True, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"Base model '{template.base_model}' could not be loaded: {str(exc).splitlines()[0][:300]}. "
                        "It needs model.safetensors weights and an image-classification architecture.") from exc
    log.info("fine-tuning %s at %d px with %d labels", source, processor_settings(processor)[0], len(labels))
    return network, processor


def processor_settings(processor) -> tuple[int, list[float], list[float]]:
    """(square input size, mean, std) an image processor asks for."""
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or getattr(processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    pixels = get("height") or get("shortest_edge") or DEFAULT_INPUT_SIZE
    if not getattr(processor, "do_normalize", True):
        return int(pixels), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    mean = list(getattr(processor, "image_mean", None) or IMAGENET_MEAN)
    std = list(getattr(processor, "image_std", None) or IMAGENET_STD)
    return int(pixels), [float(v) for v in mean], [float(v) for v in std]


def load_network(folder: Path):
    """A fine-tuned network and its processor from a saved folder (no head replaced)."""
    network = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True, trust_remote_code=False)
    try:
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError):
        processor = None
    return network, processor
