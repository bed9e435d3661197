"""Input size and normalisation are read from each kind of image processor the Hub's models use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from backend.tasks.image_classification.pretrained import processor_settings


def test_vit_style_processor_gives_its_height_and_mean():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 96, "width": 96}, image_mean=[0.1, 0.2, 0.3], image_std=[0.5] * 3)
    assert processor_settings(processor) == (96, [0.1, 0.2, 0.3], [0.5, 0.5, 0.5])


def test_convnext_and_resnet_style_processor_gives_its_shortest_edge():
    from transformers import ConvNextImageProcessor

    processor = ConvNextImageProcessor(size={"shortest_edge": 224}, image_mean=[0.485, 0.456, 0.406],
                                       image_std=[0.229, 0.224, 0.225])
    assert processor_settings(processor) == (224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_a_center_crop_wins_and_no_normalisation_means_identity():
    cropped = SimpleNamespace(do_center_crop=True, crop_size={"height": 200, "width": 200}, size={"shortest_edge": 256},
                              image_mean=[0.4] * 3, image_std=[0.2] * 3)
    assert processor_settings(cropped)[0] == 200
    raw = SimpleNamespace(size={"height": 64, "width": 64}, do_normalize=False)
    assert processor_settings(raw) == (64, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])


def tiny_model_folder(tmp_path, family: str):
    """A tiny ResNet or ConvNeXt classifier with 7 classes and its processor, saved as a pretrained folder."""
    import torch
    from transformers import (ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor, ResNetConfig,
                              ResNetForImageClassification)

    torch.manual_seed(0)
    if family == "resnet":
        model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                                          layer_type="basic", num_labels=7))
    else:
        model = ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                                              num_labels=7))
    folder = tmp_path / family
    model.save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["resnet", "convnext"])
def test_other_families_get_a_new_head_and_reload_identically(tmp_path, family):
    import torch

    from backend.tasks.image_classification.config import PretrainedImageTemplate
    from backend.tasks.image_classification.model import load_classifier, save_classifier
    from backend.tasks.image_classification.model import build_pretrained

    model = build_pretrained(PretrainedImageTemplate(base_model=str(tiny_model_folder(tmp_path, family))),
                             ["cat", "dog", "eel"]).eval()
    assert model.input_size == 32 and model.network.config.id2label == {0: "cat", 1: "dog", 2: "eel"}
    pixels = torch.rand(2, 3, 32, 32)
    logits = model(pixels)
    assert logits.shape == (2, 3)
    save_classifier(model, tmp_path / "saved")
    assert torch.allclose(load_classifier(tmp_path / "saved")(pixels), logits, atol=1e-5)
