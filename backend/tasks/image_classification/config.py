"""Typed configs of the image templates; frozen, validated once, stored as JSON with the run.

The training settings (epochs, batch_size, learning_rate, ...) are backend/config.py's TrainConfig,
as for every task: the shared training core reads them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from backend.tasks.base import TemplateConfig

# A Hub id: needs network or the Hugging Face cache (no registry package ships ImageNet weights in
# a form transformers loads; the offline pretrained choice is the `efficientnet-lite0` template).
DEFAULT_IMAGE_MODEL = "google/vit-base-patch16-224"
# "off" rather than "none": the CLI reads `--set augmentation=none` as None (no value).
Augmentation = Literal["off", "shift", "basic", "strong"]
_AUGMENTATION_HELP = ("off: images as they are; shift: random shifts of up to an eighth of the image and "
                      "horizontal flip (the usual for small images such as CIFAR-10's 32 px); basic: random "
                      "resized crop and horizontal flip; strong: basic plus one random colour/geometry operation "
                      "per image (TrivialAugment). Applied on the device to whole batches, training only.")


class CnnTemplate(TemplateConfig):
    """A convolutional network from scratch: conv -> batch norm -> ReLU blocks, pooling, global average, dense head."""

    # Sized so that the cnn's usual 10-12 epochs of CIFAR-10 (45,000 images, 32 px) fit in about
    # 15 minutes of a 2-core CPU: width 24 with two blocks per stage (163k parameters) trains ~2x as
    # fast as width 32 and keeps six conv layers; bench/sweep_cnn.py and the README give the figures.
    kind: Literal["cnn"] = "cnn"
    input_size: int = Field(32, ge=8, le=512, description="Images are resized to this many pixels square.")
    width: int = Field(24, ge=4, le=1024, description="Channels of the first stage; each further stage doubles it.")
    stages: int = Field(3, ge=1, le=6, description="Stages, each followed by 2x2 max pooling (halves the image).")
    blocks_per_stage: int = Field(2, ge=1, le=8, description="Conv -> batch norm -> ReLU blocks in each stage.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout before the dense head (training only).")
    # "shift", not "basic": on CIFAR-10 after 6 epochs, 0.766 validation accuracy against 0.748 for
    # random resized crops of 60-100% of the image and 0.721 for 35-100% (bench/sweep_cnn_recipe.py, README):
    # a network this small, trained this briefly, gains more from seeing whole objects.
    augmentation: Augmentation = Field("shift", description=_AUGMENTATION_HELP)
    test_time_flip: bool = Field(True, description="When evaluating and predicting, average the scores of the image "
                                                   "and of its mirror image: about 1 point of accuracy on CIFAR-10 "
                                                   "for twice the prediction work.")


class EfficientNetLiteTemplate(TemplateConfig):
    """EfficientNet-Lite0 pretrained on ImageNet, bundled as pip packages (no download), with a new head for your classes."""

    kind: Literal["efficientnet-lite0"] = "efficientnet-lite0"
    # Defaults measured on CIFAR-10 in a 4-minute budget on a 2-core CPU (README,
    # bench/bench_images_pretrained.py): head only at 96 px reached 0.59 validation accuracy, the
    # whole network 0.37 at 96 px and 0.32 at 64 px (it sees 4-5x fewer images), the `cnn` 0.32.
    # On a GPU or with more time, train the whole network and raise the size towards 224.
    input_size: int = Field(96, ge=32, le=512,
                            description="Images are resized to this many pixels square (the network was "
                                        "pretrained at 224; smaller trains much faster on a CPU).")
    train_backbone: bool = Field(False, description="Off: train only the new head on the ImageNet features (about "
                                                    "5x faster on a CPU); on: fine-tune the whole network (best "
                                                    "with a GPU or more time).")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout before the new head (training only).")
    augmentation: Augmentation = Field("basic", description=_AUGMENTATION_HELP)


class PretrainedImageTemplate(TemplateConfig):
    """Fine-tune a pretrained vision model (ViT, ConvNeXt, ResNet, ...) with a new head for your classes."""

    kind: Literal["vit"] = "vit"
    base_model: str = Field(DEFAULT_IMAGE_MODEL,
                            description="Local folder or Hub id of a transformers image-classification model "
                                        "(a Hub id needs network or the Hugging Face cache).")
    augmentation: Augmentation = Field("basic", description=_AUGMENTATION_HELP)


ImageTemplate = Annotated[Union[CnnTemplate, EfficientNetLiteTemplate, PretrainedImageTemplate],
                          Field(discriminator="kind")]
