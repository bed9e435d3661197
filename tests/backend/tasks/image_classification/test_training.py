"""The templates learn a tiny learnable task, save and load to the same predictions, report and stop."""

from __future__ import annotations

import pytest
import torch

from backend.errors import Cancelled, UserError
from backend.tasks.image_classification.batches import ImageDataset, build_augmentation, dataset_statistics
from backend.tasks.image_classification.config import CnnTemplate, FitSettings, PretrainedImageTemplate
from backend.tasks.image_classification.fit import build_classifier, fit
from backend.tasks.image_classification.model import load_classifier
from backend.tasks.image_classification.predict import predict_probabilities, top_classes
from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries

LABELS = sorted(COLOURS)
TINY_CNN = CnnTemplate(input_size=16, width=8, stages=2, blocks_per_stage=1, dropout=0.0)


def colour_split(per_class: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Noisy one-colour images; the label is the colour (a rule a model can learn)."""
    entries = colour_entries(per_class, seed=seed)
    return list(entries.values()), [LABELS.index(name.split("/")[0]) for name in entries]


@pytest.fixture
def colour_data():
    (train_images, train_ids), (val_images, val_ids) = colour_split(12, seed=1), colour_split(6, seed=2)
    return (ImageDataset(train_images, train_ids, 16), ImageDataset(val_images, val_ids, 16), train_images, val_images)


def test_cnn_learns_saves_and_reloads_to_the_same_predictions(tmp_path, colour_data):
    train, validation, train_images, val_images = colour_data
    model = build_classifier(TINY_CNN, LABELS, train_images, seed=0)
    progress = []
    result = fit(model, train, validation, FitSettings(epochs=8, batch_size=12, learning_rate=1e-2, log_every_steps=3),
                 on_progress=lambda step, values: progress.append((step, values)), output_dir=tmp_path / "model")
    assert result.stop_reason == "completed" and result.steps == 8 * 3
    assert result.best_metrics["accuracy"] >= 0.8  # chance is 1/3
    assert len(result.best_metrics["confusion_matrix"]) == 3
    assert set(result.best_metrics["per_class"]) == set(LABELS)
    losses = [values["train_loss"] for _, values in progress if "train_loss" in values]
    assert losses[-1] < losses[0]
    assert sum("eval_macro_f1" in values for _, values in progress) == 8
    assert {"learning_rate", "samples_per_second", "epoch", "progress"} <= set(progress[0][1])
    in_memory = predict_probabilities(model, val_images)
    reloaded = load_classifier(tmp_path / "model")
    assert reloaded.labels == LABELS
    assert torch.allclose(torch.from_numpy(predict_probabilities(reloaded, val_images)),
                          torch.from_numpy(in_memory), atol=1e-5)
    (best, probability), *_ = top_classes(reloaded, in_memory, k=2)[0]
    assert best == LABELS[validation.targets[0]] and probability == in_memory[0].max()


@pytest.fixture
def tiny_vit_folder(tmp_path):
    """A tiny ViT with its image processor, saved as a pretrained folder (built from config, nothing downloaded)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, num_labels=7)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-vit"
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def test_pretrained_vit_gets_a_new_head_learns_and_reloads(tmp_path, colour_data, tiny_vit_folder):
    from transformers import pipeline

    train, validation, train_images, val_images = colour_data
    template = PretrainedImageTemplate(base_model=str(tiny_vit_folder), augmentation="off")
    model = build_classifier(template, LABELS, train_images)
    assert model.network.classifier.out_features == 3  # was 7: replaced for our labels
    assert model.input_size == 16 and model.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    result = fit(model, train, validation, FitSettings(epochs=10, batch_size=12, learning_rate=3e-3),
                 output_dir=tmp_path / "model")
    assert result.best_metrics["accuracy"] >= 0.8
    in_memory = predict_probabilities(model, val_images)
    reloaded = load_classifier(tmp_path / "model")
    assert torch.allclose(torch.from_numpy(predict_probabilities(reloaded, val_images)),
                          torch.from_numpy(in_memory), atol=1e-5)
    # The saved folder is a plain Hugging Face model: transformers' own pipeline loads it, with our labels.
    from PIL import Image
    import io

    answer = pipeline("image-classification", model=str(tmp_path / "model"))(Image.open(io.BytesIO(val_images[0])))
    assert {item["label"] for item in answer} <= set(LABELS)


def test_a_hub_id_without_network_or_a_missing_folder_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the Hugging Face cache, and there is no network"):
        build_classifier(PretrainedImageTemplate(base_model="modelsmith-test/no-such-vit"), LABELS, [])
    with pytest.raises(UserError, match="is not a folder on this machine"):
        build_classifier(PretrainedImageTemplate(base_model="/no/such folder/"), LABELS, [])


def test_should_stop_cancels_and_time_budget_and_early_stopping_end_the_fit(colour_data):
    train, validation, train_images, _ = colour_data
    model = build_classifier(TINY_CNN, LABELS, train_images)
    calls = []
    with pytest.raises(Cancelled):
        fit(model, train, validation, FitSettings(epochs=3, batch_size=12),
            should_stop=lambda: calls.append(1) or len(calls) >= 2)
    assert len(calls) == 2
    timed = fit(model, train, validation, FitSettings(epochs=50, batch_size=12, time_budget_seconds=1e-3))
    assert timed.stop_reason == "time_budget" and timed.steps == 1 and timed.best_metrics  # evaluated once
    model = build_classifier(TINY_CNN, LABELS, train_images)
    stopped = fit(model, train, validation, FitSettings(epochs=50, batch_size=12, learning_rate=1e-7,
                                                        early_stopping_patience=2))
    assert stopped.stop_reason == "early_stopping" and stopped.steps < 50 * 3


def test_misclassified_lists_wrong_validation_images_most_confident_first(colour_data):
    train, validation, train_images, _ = colour_data
    model = build_classifier(TINY_CNN, LABELS, train_images)
    result = fit(model, train, validation, FitSettings(epochs=1, batch_size=12, learning_rate=1e-6))
    wrong = result.misclassified
    assert len(wrong) == round((1 - result.best_metrics["accuracy"]) * len(validation))
    assert all(item.true_label != item.predicted_label for item in wrong)
    assert [item.confidence for item in wrong] == sorted((item.confidence for item in wrong), reverse=True)
    assert all(LABELS[validation.targets[item.index]] == item.true_label for item in wrong)


@pytest.mark.parametrize("kind", ["off", "basic", "strong"])
def test_augmentation_presets_keep_shape_and_range(kind):
    torch.manual_seed(0)
    batch = torch.rand(6, 3, 16, 16)
    augmented = build_augmentation(kind, 16)(batch)
    assert augmented.shape == batch.shape and augmented.min() >= 0 and augmented.max() <= 1
    assert torch.equal(augmented, batch) == (kind == "off")


def test_dataset_statistics_are_the_pixels_mean_and_std():
    images, _ = colour_split(4, seed=3)
    mean, std = dataset_statistics(images, 16)
    red, green, blue = (torch.tensor(c, dtype=torch.float32) / 255 for c in COLOURS.values())
    expected = (red + green + blue) / 3
    assert torch.allclose(torch.tensor(mean), expected, atol=0.02)
    assert all(s > 0.1 for s in std)


def test_dataloader_workers_decode_the_same_batches(colour_data):
    from backend.tasks.image_classification.batches import make_loader

    train = colour_data[0]
    in_process = [(images, targets) for images, targets in make_loader(train, 8, shuffle=False)]
    in_worker = [(images, targets) for images, targets in make_loader(train, 8, shuffle=False, num_workers=1)]
    assert len(in_process) == len(in_worker) == 5
    for (a, y_a), (b, y_b) in zip(in_process, in_worker):
        assert a.dtype == torch.uint8 and a.shape[1:] == (3, 16, 16)
        assert torch.equal(a, b) and torch.equal(y_a, y_b)


def test_predict_zip_lists_every_image_and_scores_class_folders(tmp_path, colour_data):
    from backend.tasks.image_classification.predict import predict_zip
    from tests.backend.tasks.image_classification.conftest import image_bytes, write_zip

    model = build_classifier(TINY_CNN, LABELS, colour_data[2])
    entries = {**colour_entries(2, prefix="check/"), "check/red/broken.png": b"", "check/notes.txt": b"x",
               "check/purple/0.png": image_bytes((120, 0, 120))}
    result = predict_zip(model, write_zip(tmp_path / "predict.zip", entries))
    assert [row["file"] for row in result.rows] == [name for name in entries
                                                    if name.endswith(".png") and "broken" not in name]
    assert {path for path, _ in result.skipped} == {"check/red/broken.png", "check/notes.txt"}
    assert all(row["predicted_label"] in LABELS and 0 < row["score"] <= 1 for row in result.rows)
    scored = [row for row in result.rows if row["true_label"] in LABELS]  # purple is not a class of the model
    assert len(scored) == 6 and sum(map(sum, result.metrics["confusion_matrix"])) == 6
    assert result.metrics["accuracy"] == sum(r["predicted_label"] == r["true_label"] for r in scored) / 6
    flat = predict_zip(model, write_zip(tmp_path / "flat.zip", {"a.png": image_bytes(), "b.png": image_bytes()}))
    assert flat.metrics is None and [row["true_label"] for row in flat.rows] == [None, None]
    with pytest.raises(UserError, match="no readable image"):
        predict_zip(model, write_zip(tmp_path / "none.zip", {"a/x.png": b""}))


def test_learning_rate_warms_up_then_decays_to_zero_by_steps_or_by_the_time_budget():
    from backend.tasks.image_classification.fit import learning_rate_factor

    by_steps = FitSettings(warmup_ratio=0.1)
    assert learning_rate_factor(0, 100, 0.0, by_steps) == 0.0
    assert learning_rate_factor(5, 100, 0.0, by_steps) == pytest.approx(0.5)
    assert learning_rate_factor(10, 100, 0.0, by_steps) == pytest.approx(1.0)
    assert learning_rate_factor(55, 100, 0.0, by_steps) == pytest.approx(0.5)
    assert learning_rate_factor(100, 100, 1e9, by_steps) == 0.0  # no budget: the clock does not matter
    budget = FitSettings(warmup_ratio=0.1, time_budget_seconds=100)
    assert learning_rate_factor(10, 1000, 55.0, budget) == pytest.approx(0.5)  # the clock is further along
    assert learning_rate_factor(10, 1000, 150.0, budget) == 0.0


def test_end_to_end_zip_to_stored_parquet_to_trained_model_to_reloaded_predictions(tmp_path):
    from backend.tasks.image_classification.prepare import SplitOptions, ingest_image_zip, load_split
    from tests.backend.tasks.image_classification.conftest import write_zip

    zip_path = write_zip(tmp_path / "colours.zip", colour_entries(12, prefix="photos/"))
    folder, prepared = ingest_image_zip(zip_path, tmp_path / "datasets", options=SplitOptions(0.25, seed=3))
    train, validation = load_split(folder, "train"), load_split(folder, "validation")
    ids = {label: i for i, label in enumerate(prepared.labels)}
    train_set = ImageDataset(train["image"], train["label"].map(ids), 16)
    val_set = ImageDataset(validation["image"], validation["label"].map(ids), 16)
    model = build_classifier(TINY_CNN, prepared.labels, list(train["image"]))
    result = fit(model, train_set, val_set, FitSettings(epochs=6, batch_size=9, learning_rate=1e-2),
                 output_dir=tmp_path / "run")
    assert len(val_set) == 9 and result.best_metrics["accuracy"] >= 0.8
    reloaded = load_classifier(tmp_path / "run")
    images = list(validation["image"])
    assert (predict_probabilities(reloaded, images).argmax(1) == predict_probabilities(model, images).argmax(1)).all()
    predicted = [reloaded.labels[i] for i in predict_probabilities(reloaded, images).argmax(1)]
    assert sum(p == t for p, t in zip(predicted, validation["label"])) / 9 == result.best_metrics["accuracy"]
