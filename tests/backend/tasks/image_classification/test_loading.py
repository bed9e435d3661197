"""How training images reach the model: decoded once into a tensor when they fit the budget, else per
item (in DataLoader worker processes when there are any), and the run is the same either way."""

from __future__ import annotations

import multiprocessing

import pandas as pd
import psutil
import pytest
import torch

from backend.errors import Cancelled
from backend.tasks.image_classification import training
from backend.tasks.image_classification.batches import (DecodedImageDataset, ImageDataset, decode_images,
                                                        decoded_bytes, image_dataset, loader_workers, make_loader)
from backend.tasks.image_classification.images import ImageProblem
from backend.training.run import get_accelerator, train
from tests.backend.tasks.image_classification.conftest import image_bytes
from tests.backend.tasks.image_classification.test_training import LABELS, colour_split, image_config, stored_dataset
from tests.backend.training_fixtures import Recorder, never


@pytest.fixture(scope="module")
def accelerator():
    return get_accelerator("cpu")


@pytest.fixture
def mixed_images(cifar_entries) -> tuple[list[bytes], list[int]]:
    """CIFAR JPEGs (32 px) and drawn images of other sizes and modes: a resize and conversions to check."""
    images = list(cifar_entries.values())[:40]
    images += [image_bytes((10, 200, 90), size=(40, 20), noise_seed=1),
               image_bytes((250, 250, 0), size=(17, 33), fmt="JPEG", noise_seed=2),
               image_bytes((90, 90, 90), mode="L", noise_seed=3),
               image_bytes((200, 0, 0), mode="RGBA", noise_seed=4),
               image_bytes((0, 0, 200), mode="P", fmt="GIF", noise_seed=5)]
    return images, [i % 7 for i in range(len(images))]


@pytest.fixture
def colour_dataset(tmp_path):
    """36 training and 18 validation images of 3 colour classes, stored as the image task stores them."""
    frames = [pd.DataFrame({"image": images, "label": [LABELS[i] for i in ids]})
              for images, ids in (colour_split(12, seed=1), colour_split(6, seed=2))]
    return stored_dataset(tmp_path / "colours", *frames, LABELS)


def quality(metrics: dict) -> tuple:
    return metrics["accuracy"], metrics["macro_f1"], metrics["loss"]


@pytest.mark.parametrize("input_size", [32, 24])
def test_decoded_once_equals_decoding_each_item_pixel_for_pixel(mixed_images, input_size):
    images, targets = mixed_images
    per_item = ImageDataset(images, targets, input_size)
    decoded = DecodedImageDataset(decode_images(images, input_size, threads=3), targets)
    assert decoded.pixels.shape == (len(images), 3, input_size, input_size) and decoded.pixels.dtype == torch.uint8
    for index in range(len(images)):
        (a, label_a), (b, label_b) = per_item[index], decoded[index]
        assert torch.equal(a, b) and label_a == label_b == targets[index]
    picks = [44, 3, 0, 17, 3]
    batch, labels = decoded.__getitems__(picks)
    assert torch.equal(batch, torch.stack([per_item[i][0] for i in picks]))
    assert labels.tolist() == [targets[i] for i in picks] and labels.dtype == torch.int64
    # Through the loaders the training builds: the same batches, in the same shuffled order.
    order = training.EpochShuffle(len(images), seed=5)
    one = [(x, y) for x, y in make_loader(per_item, 8, sampler=order)]
    other = [(x, y) for x, y in make_loader(decoded, 8, sampler=order)]
    assert len(one) == len(other) == 6
    for (x_a, y_a), (x_b, y_b) in zip(one, other):
        assert x_a.shape[0] == x_b.shape[0] and torch.equal(x_a, x_b) and torch.equal(y_a, y_b)


def test_a_broken_image_fails_decoding_with_the_image_problem():
    with pytest.raises(ImageProblem, match="empty"):
        decode_images([image_bytes(), b"", image_bytes()], 16, threads=2)


def test_the_budget_picks_decoding_once_or_per_item(mixed_images):
    images, targets = mixed_images
    needed = decoded_bytes(len(images), 24)
    assert needed == len(images) * 3 * 24 * 24
    assert isinstance(image_dataset(images, targets, 24, needed), DecodedImageDataset)
    assert isinstance(image_dataset(images, targets, 24, needed - 1), ImageDataset)
    assert isinstance(image_dataset(images, targets, 24, 0), ImageDataset)


def test_worker_count_follows_the_setting_else_the_device(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers(3, torch.device("cpu")) == 3 and loader_workers(0, torch.device("cuda")) == 0
    assert loader_workers(None, torch.device("cpu")) == 0  # workers would take the training threads' cores
    assert loader_workers(None, torch.device("cuda")) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert loader_workers(None, torch.device("cuda")) == 3  # one core left for the training process
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers(None, torch.device("cuda"), processes=4) == 3  # 4 GPUs' processes share the cores


def test_a_run_is_the_same_with_the_cache_on_or_off(tmp_path, colour_dataset, accelerator, monkeypatch):
    built = []

    def recording(*args):
        built.append(type(dataset := image_dataset(*args)))
        return dataset

    monkeypatch.setattr(training, "image_dataset", recording)
    config = image_config(epochs=3)
    cached = train(config, colour_dataset, tmp_path / "cached", on_progress=Recorder(), should_stop=never,
                   accelerator=accelerator)
    monkeypatch.setenv("MODELSMITH_IMAGE_CACHE_MB", "0")
    per_item = train(config, colour_dataset, tmp_path / "per-item", on_progress=Recorder(), should_stop=never,
                     accelerator=accelerator)
    assert built == [DecodedImageDataset, DecodedImageDataset, ImageDataset, ImageDataset]
    # Same pixels, same batch order, same RNG draws (Kornia's augmentation): the same run.
    assert quality(cached.metrics) == quality(per_item.metrics)
    assert cached.metrics["confusion_matrix"] == per_item.metrics["confusion_matrix"]


@pytest.mark.parametrize("given", ["environment", "runner settings"])
def test_validation_gets_what_the_training_split_leaves_of_the_budget(given, tmp_path, colour_dataset, accelerator,
                                                                       monkeypatch):
    """The budget comes from the environment, or from the settings the runner passes (which win: a
    Services built in code with its own Settings trains with them)."""
    from backend.settings import Settings

    built = []

    def recording(images, targets, input_size, budget_bytes):
        built.append((len(images), budget_bytes))
        return image_dataset(images, targets, input_size, budget_bytes)

    monkeypatch.setattr(training, "image_dataset", recording)
    # 0.05 MB = 52,428 bytes: 36 training images of 16 px take 27,648.
    monkeypatch.setenv("MODELSMITH_IMAGE_CACHE_MB", "0.05" if given == "environment" else "0")
    settings = Settings(image_cache_mb=0.05) if given == "runner settings" else None
    train(image_config(epochs=1), colour_dataset, tmp_path / "run", on_progress=Recorder(), should_stop=never,
          accelerator=accelerator, settings=settings)
    budget = int(0.05 * 2**20)
    assert built == [(36, budget), (18, budget - decoded_bytes(36, 16))]


def test_resuming_mid_epoch_with_the_cache_finishes_like_an_uninterrupted_run(tmp_path, colour_dataset,
                                                                              accelerator):
    config = image_config(epochs=3, batch_size=8)  # 5 steps per epoch
    checks = {"count": 0}

    def stop_after_7_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 7

    with pytest.raises(Cancelled):
        train(config, colour_dataset, tmp_path / "run", on_progress=Recorder(), should_stop=stop_after_7_steps,
              accelerator=accelerator)
    assert (tmp_path / "run" / "checkpoints" / "step-00000007").is_dir()  # mid-way through the second epoch
    resumed = train(config, colour_dataset, tmp_path / "run", on_progress=Recorder(), should_stop=never,
                    resume=True, accelerator=accelerator)
    straight = train(config, colour_dataset, tmp_path / "straight", on_progress=Recorder(), should_stop=never,
                     accelerator=accelerator)
    assert quality(resumed.metrics) == quality(straight.metrics)


def _worker_processes() -> list[psutil.Process]:
    """This process's descendants other than multiprocessing's own helpers (the forkserver and the
    resource tracker stay for the life of the process, whatever starts them)."""
    helpers = ("forkserver", "resource_tracker")
    return [child for child in psutil.Process().children(recursive=True)
            if not any(name in " ".join(child.cmdline()) for name in helpers)]


def test_decoding_workers_run_during_training_and_none_outlives_the_run(tmp_path, colour_dataset, accelerator,
                                                                        monkeypatch):
    monkeypatch.setenv("MODELSMITH_IMAGE_CACHE_MB", "0")
    monkeypatch.setenv("MODELSMITH_IMAGE_WORKERS", "2")
    before = {child.pid for child in _worker_processes()}
    seen = []

    def counting(step, values):
        seen.append(len(multiprocessing.active_children()))

    result = train(image_config(epochs=2, log_every_steps=1), colour_dataset, tmp_path / "done", on_progress=counting,
                   should_stop=never, accelerator=accelerator)
    assert result.stop_reason == "completed" and max(seen) >= 2  # the training loader's 2 workers decoded
    assert multiprocessing.active_children() == []
    assert {child.pid for child in _worker_processes()} == before
    checks = {"count": 0}

    def stop_after_2_steps() -> bool:
        checks["count"] += 1
        return checks["count"] >= 2

    # Stopped mid-epoch: the workers end too, even while the exception (its traceback holds the run's
    # frames, so its loaders) is still referenced, as the job runner's error handling does.
    with pytest.raises(Cancelled) as stopped:
        train(image_config(epochs=2), colour_dataset, tmp_path / "stopped", on_progress=Recorder(),
              should_stop=stop_after_2_steps, accelerator=accelerator)
    assert multiprocessing.active_children() == [] and stopped.value is not None
    assert {child.pid for child in _worker_processes()} == before


def test_the_estimate_times_decoding_in_each_step_only_when_the_split_is_not_cached(colour_dataset, monkeypatch):
    from backend.tasks.image_classification import estimate
    from backend.tasks.image_classification.images import load_rgb

    decoded = []
    monkeypatch.setattr(estimate, "load_rgb", lambda data: decoded.append(1) or load_rgb(data))
    config = image_config(batch_size=12)
    cached = estimate.estimate_images(config, colour_dataset)
    assert len(decoded) == 12 and cached.seconds_per_step > 0  # one batch, decoded once before the timed steps
    decoded.clear()
    monkeypatch.setenv("MODELSMITH_IMAGE_CACHE_MB", "0")
    per_step = estimate.estimate_images(config, colour_dataset)
    assert len(decoded) > 12 and len(decoded) % 12 == 0 and per_step.seconds_per_step > 0  # every step decodes
