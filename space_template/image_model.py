"""Load and run this Space's image classifier: no Modelsmith code, only torch, safetensors, Pillow
(and transformers for a fine-tuned pretrained model).

space.json's `family` says how ./model was saved:
- "cnn": Modelsmith's convolutional network (model.safetensors + modelsmith_image.json);
- "efficientnet-lite0": EfficientNet-Lite0 fine-tuned by Modelsmith (model.safetensors, the
  architecture from the `efficientnet-lite-pytorch` package in requirements.txt: nothing downloads);
- "transformers": a Hugging Face AutoModelForImageClassification folder.
Both take the image as Modelsmith's app does (upright RGB, alpha on white, stretched to a square
of `input_size` pixels, bilinear, [0, 1], then (x - mean) / std with space.json's mean and std),
so the Space gives the app's probabilities. The CNN class is a standalone copy of Modelsmith's
backend/tasks/image_classification/cnn.py.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.torch import load_file
from torch import nn


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    """conv 3x3 (no bias: batch norm adds its own) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class Cnn(nn.Module):
    """[conv -> batch norm -> ReLU] x blocks per stage, max pool per stage, global average, dropout, linear."""

    def __init__(self, template: dict, num_labels: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for stage in range(template["stages"]):
            width = template["width"] * 2 ** stage
            for _ in range(template["blocks_per_stage"]):
                layers.append(conv_block(channels, width))
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(template["dropout"]),
                                  nn.Linear(channels, num_labels))

    def forward(self, pixels):
        return self.head(self.features(pixels))


def upright_rgb(image: Image.Image) -> Image.Image:
    """The image turned by its EXIF orientation, in RGB; transparency shows on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def load_image_classifier(model_dir: Path, space: dict) -> Callable[[Image.Image], dict[str, float]]:
    """A function: a Pillow image -> {label: probability}."""
    labels, size = list(space["labels"]), int(space["input_size"])
    mean = torch.tensor(space["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(space["std"], dtype=torch.float32).view(1, 3, 1, 1)
    if space["family"] == "cnn":
        network = Cnn(space["template"], len(labels))
        network.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")))
        forward = network
        if space["template"].get("test_time_flip", False):  # as the app predicts: the image and its mirror
            forward = lambda pixels: (network(pixels) + network(pixels.flip(-1))) / 2  # noqa: E731
    elif space["family"] == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        # Built for the input size it was trained at: its convolutions pad as TensorFlow's "SAME" for that size.
        network = EfficientNet.from_name("efficientnet-lite0", image_size=size, num_classes=len(labels))
        network.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")))
        forward = network
    else:
        from transformers import AutoModelForImageClassification

        network = AutoModelForImageClassification.from_pretrained(model_dir, use_safetensors=True,
                                                                  trust_remote_code=False)
        forward = lambda pixels: network(pixel_values=pixels).logits  # noqa: E731
    network.eval()

    @torch.no_grad()
    def classify(image: Image.Image) -> dict[str, float]:
        picture = upright_rgb(image)
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        array = np.ascontiguousarray(np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1))
        pixels = torch.from_numpy(array).unsqueeze(0).float().div_(255.0)       # (1, 3, S, S) in [0, 1]
        probabilities = forward((pixels - mean) / std).float().softmax(dim=-1)[0]
        return {label: float(p) for label, p in zip(labels, probabilities)}

    return classify
