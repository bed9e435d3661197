"""The `cnn` template: a plain convolutional network trained from scratch.

    pixels (B, 3, S, S) normalised
      -> stage 1: [conv 3x3 -> batch norm -> ReLU] x blocks_per_stage  (B, W, S, S) -> max pool 2x2
      -> stage 2: the same at 2W channels                               (B, 2W, S/2, S/2) -> pool
      -> ...                                                            (B, W*2^(k-1), S/2^k, S/2^k)
      -> global average pool (B, C) -> dropout -> linear (B, classes)

Batch norm lets it train at a high learning rate; global average pooling makes the head
independent of the input size, so the same network takes 32 px or 224 px images.

Weights and activations are kept channels-last (NHWC): oneDNN's CPU convolutions and cuDNN's
tensor-core ones run faster in it (bench/sweep_cnn.py measures the CPU's gain). It is only a
memory layout: the saved weights are made contiguous (model.save_classifier) and load into either.
"""

from __future__ import annotations

import torch
from torch import nn

from backend.tasks.image_classification.config import CnnTemplate


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    """conv 3x3 (no bias: batch norm adds its own) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class Cnn(nn.Module):
    """The network of a CnnTemplate; forward takes normalised pixels (B, 3, H, W), returns logits (B, classes)."""

    memory_format = torch.channels_last

    def __init__(self, template: CnnTemplate, num_labels: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for stage in range(template.stages):
            width = template.width * 2 ** stage
            for _ in range(template.blocks_per_stage):
                layers.append(conv_block(channels, width))
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(template.dropout),
                                  nn.Linear(channels, num_labels))
        self.to(memory_format=self.memory_format)

    def forward(self, pixels):
        return self.head(self.features(pixels.contiguous(memory_format=self.memory_format)))
