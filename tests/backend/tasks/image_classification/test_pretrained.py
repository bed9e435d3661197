"""Input size and normalisation are read from each kind of image processor the Hub's models use."""

from __future__ import annotations

from types import SimpleNamespace

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
