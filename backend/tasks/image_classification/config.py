"""Typed configs of the image templates and of one fit; frozen, validated once, stored as JSON.

The fit settings use the names of backend/config.py's TrainConfig (epochs, batch_size,
learning_rate, ...) so that the shared training core can hand its own config over unchanged.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field

from backend.tasks.base import TemplateConfig

# A Hub id: needs network or the Hugging Face cache (no registry package ships ImageNet weights in
# a form transformers loads; see the README's image section).
DEFAULT_IMAGE_MODEL = "google/vit-base-patch16-224"
# "off" rather than "none": the CLI reads `--set augmentation=none` as None (no value).
Augmentation = Literal["off", "basic", "strong"]
_AUGMENTATION_HELP = ("off: images as they are; basic: random resized crop and horizontal flip; strong: basic "
                      "plus one random colour/geometry operation per image (TrivialAugment). Applied on the "
                      "device to whole batches, training only.")


class _Frozen(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}


class CnnTemplate(TemplateConfig):
    """A convolutional network from scratch: conv -> batch norm -> ReLU blocks, pooling, global average, dense head."""

    # Sized for minutes on a 2-core CPU at 32x32 (CIFAR-10); not yet tuned by a sweep.
    kind: Literal["cnn"] = "cnn"
    input_size: int = Field(32, ge=8, le=512, description="Images are resized to this many pixels square.")
    width: int = Field(32, ge=4, le=1024, description="Channels of the first stage; each further stage doubles it.")
    stages: int = Field(3, ge=1, le=6, description="Stages, each followed by 2x2 max pooling (halves the image).")
    blocks_per_stage: int = Field(2, ge=1, le=8, description="Conv -> batch norm -> ReLU blocks in each stage.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout before the dense head (training only).")
    augmentation: Augmentation = Field("basic", description=_AUGMENTATION_HELP)


class PretrainedImageTemplate(TemplateConfig):
    """Fine-tune a pretrained vision model (ViT, ConvNeXt, ResNet, ...) with a new head for your classes."""

    kind: Literal["vit"] = "vit"
    base_model: str = Field(DEFAULT_IMAGE_MODEL,
                            description="Local folder or Hub id of a transformers image-classification model "
                                        "(a Hub id needs network or the Hugging Face cache).")
    augmentation: Augmentation = Field("basic", description=_AUGMENTATION_HELP)


ImageTemplate = Annotated[Union[CnnTemplate, PretrainedImageTemplate], Field(discriminator="kind")]


class FitSettings(_Frozen):
    """The training settings one fit uses (a subset of TrainConfig, same names and meaning)."""

    epochs: int = Field(10, ge=1, le=1000, description="Passes over the training images.")
    batch_size: int = Field(128, ge=1, le=4096, description="Images per optimizer step.")
    learning_rate: float = Field(2e-3, gt=0, lt=1, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.05, ge=0, lt=1, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up the learning rate.")
    max_grad_norm: float = Field(1.0, ge=0, le=1000, description="Gradient clipping norm; 0 turns it off.")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed for weights, shuffling and augmentation.")
    log_every_steps: int = Field(10, ge=1, le=10_000, description="Report training progress every N steps.")
    early_stopping_patience: int = Field(0, ge=0, le=100, description="Stop after N evaluations without a better "
                                                                       "validation macro F1; 0 = off.")
    time_budget_seconds: float = Field(0, ge=0, description="Stop training when this much time is spent; "
                                                            "0 = no limit.")
