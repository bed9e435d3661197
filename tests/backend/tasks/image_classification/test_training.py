"""The templates learn a tiny learnable task through the app's training loop (the epochs strategy of the
shared core, backend.training.run.train), save and load to the same predictions, report and stop."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch

from backend.errors import Cancelled, UserError
from backend.tasks.image_classification.batches import ImageDataset, build_augmentation, dataset_statistics
from backend.tasks.image_classification.config import CnnTemplate, PretrainedImageTemplate
from backend.tasks.image_classification.model import load_classifier
from backend.tasks.image_classification.predict import predict_probabilities, top_classes
from backend.tasks.image_classification.training import build_classifier
from backend.training.run import get_accelerator, train
from storage.records import DatasetRecord
from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries
from tests.backend.training_fixtures import Recorder, never

LABELS = sorted(COLOURS)
TINY_CNN = CnnTemplate(input_size=16, width=8, stages=2, blocks_per_stage=1, dropout=0.0)


def colour_split(per_class: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Noisy one-colour images; the label is the colour (a rule a model can learn)."""
    entries = colour_entries(per_class, seed=seed)
    return list(entries.values()), [LABELS.index(name.split("/")[0]) for name in entries]


def stored_dataset(folder, train: pd.DataFrame, validation: pd.DataFrame, labels: list[str]) -> DatasetRecord:
    """Splits (image bytes, label) stored as the image task stores them, described as a DatasetRecord."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, frame in (("train", train), ("validation", validation)):
        frame[["image", "label"]].to_parquet(folder / f"{split}.parquet", index=False)
    return DatasetRecord(id=1, name="colours", task="image-classification", content_hash="0" * 64, path=str(folder),
                         text_column=None, label_column=None, rows=len(train) + len(validation),
                         train_rows=len(train), validation_rows=len(validation), labels=labels)


def image_config(template=TINY_CNN, **overrides):
    from backend.config import TrainConfig

    values = dict(dataset_id=1, task="image-classification", template=template, epochs=8, batch_size=12,
                  learning_rate=1e-2, log_every_steps=3, seed=0)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def accelerator():
    return get_accelerator("cpu")


@pytest.fixture
def colour_data(tmp_path):
    (train_images, train_ids), (val_images, val_ids) = colour_split(12, seed=1), colour_split(6, seed=2)
    frames = [pd.DataFrame({"image": images, "label": [LABELS[i] for i in ids]})
              for images, ids in ((train_images, train_ids), (val_images, val_ids))]
    dataset = stored_dataset(tmp_path / "colours", *frames, LABELS)
    return (dataset, ImageDataset(train_images, train_ids, 16), ImageDataset(val_images, val_ids, 16), train_images,
            val_images)


@pytest.mark.slow
def test_cnn_learns_saves_and_reloads_to_the_same_predictions(tmp_path, colour_data, accelerator):
    dataset, _, validation, _, val_images = colour_data
    progress = Recorder()
    result = train(image_config(), dataset, tmp_path / "model", on_progress=progress, should_stop=never,
                   accelerator=accelerator)
    assert result.stop_reason == "completed" and progress.calls[-1][1]["total_steps"] == 8 * 3
    assert result.metrics["accuracy"] >= 0.8  # chance is 1/3
    assert len(result.metrics["confusion_matrix"]) == 3
    assert set(result.metrics["per_class"]) == set(LABELS)
    losses = [value for _, value in progress.series("train_loss")]
    assert losses[-1] < losses[0]
    assert len(progress.series("eval_macro_f1")) == 8  # once per epoch
    assert {"learning_rate", "samples_per_second", "epoch", "progress"} <= set(progress.calls[0][1])
    model = result.predictor.model
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


@pytest.mark.slow
def test_pretrained_vit_gets_a_new_head_learns_and_reloads(tmp_path, colour_data, tiny_vit_folder, accelerator):
    from transformers import pipeline

    dataset, _, _, train_images, val_images = colour_data
    template = PretrainedImageTemplate(base_model=str(tiny_vit_folder), augmentation="off")
    model = build_classifier(template, LABELS, train_images)
    assert model.network.classifier.out_features == 3  # was 7: replaced for our labels
    assert model.input_size == 16 and model.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    result = train(image_config(template, epochs=10, learning_rate=3e-3), dataset, tmp_path / "model",
                   on_progress=Recorder(), should_stop=never, accelerator=accelerator)
    assert result.metrics["accuracy"] >= 0.8
    in_memory = predict_probabilities(result.predictor.model, val_images)
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


@pytest.mark.slow
def test_should_stop_cancels_and_time_budget_and_early_stopping_end_the_run(tmp_path, colour_data, accelerator):
    dataset = colour_data[0]
    calls = []
    with pytest.raises(Cancelled):
        train(image_config(epochs=3), dataset, tmp_path / "stopped", on_progress=Recorder(),
              should_stop=lambda: calls.append(1) or len(calls) >= 2, accelerator=accelerator)
    assert len(calls) == 2 and (tmp_path / "stopped" / "checkpoints" / "step-00000002").is_dir()
    progress = Recorder()
    timed = train(image_config(epochs=50, time_budget_seconds=1e-3), dataset, tmp_path / "timed",
                  on_progress=progress, should_stop=never, accelerator=accelerator)
    assert timed.stop_reason == "time_budget" and timed.best_step == 1 and timed.metrics["accuracy"] >= 0
    assert len(progress.series("eval_macro_f1")) == 1  # the final evaluation of what the budget allowed
    stopped = train(image_config(epochs=50, learning_rate=1e-7, early_stopping_patience=2), dataset,
                    tmp_path / "patience", on_progress=(progress := Recorder()), should_stop=never,
                    accelerator=accelerator)
    assert stopped.stop_reason == "early_stopping" and progress.calls[-1][0] < 50 * 3


@pytest.mark.slow
def test_misclassified_lists_wrong_validation_images_most_confident_first(tmp_path, colour_data, accelerator):
    dataset, _, validation, _, _ = colour_data
    result = train(image_config(epochs=1, learning_rate=1e-6), dataset, tmp_path / "run", on_progress=Recorder(),
                   should_stop=never, accelerator=accelerator)
    wrong = result.metrics["misclassified"]
    assert len(wrong) == round((1 - result.metrics["accuracy"]) * len(validation))
    assert all(item["true_label"] != item["predicted_label"] for item in wrong)
    assert [item["confidence"] for item in wrong] == sorted((item["confidence"] for item in wrong), reverse=True)
    assert all(LABELS[validation.targets[item["index"]]] == item["true_label"] for item in wrong)


@pytest.mark.parametrize("kind", ["off", "shift", "basic", "strong"])
def test_augmentation_presets_keep_shape_and_range(kind):
    torch.manual_seed(0)
    batch = torch.rand(6, 3, 16, 16)
    augmented = build_augmentation(kind, 16)(batch)
    assert augmented.shape == batch.shape and augmented.min() >= 0 and augmented.max() <= 1
    assert torch.equal(augmented, batch) == (kind == "off")


def test_shift_is_a_reflect_padded_crop_of_the_image_or_of_its_mirror():
    torch.manual_seed(1)
    batch = torch.rand(8, 3, 16, 16)
    augmented = build_augmentation("shift", 16)(batch)
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2), mode="reflect")   # an eighth of 16 px
    shifts = set()
    for image, out in zip(padded, augmented):
        matches = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if torch.allclose((image.flip(-1) if flip else image)[:, dy:dy + 16, dx:dx + 16], out, atol=1e-6)]
        assert matches, "not a crop of the reflect-padded image"
        shifts.add(matches[0][:2])
    assert len(shifts) > 1   # random offsets, not one fixed crop


def test_test_time_flip_averages_the_mirror_image_when_evaluating_only(tmp_path):
    from backend.tasks.image_classification.model import save_classifier

    images, _ = colour_split(4, seed=2)
    model = build_classifier(TINY_CNN, LABELS, images)
    assert TINY_CNN.test_time_flip   # the cnn's default
    pixels = torch.rand(3, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        one_view, mirrored = model._logits(pixels), model._logits(pixels.flip(-1))
        assert not torch.allclose(one_view, mirrored)
        assert torch.allclose(model(pixels), (one_view + mirrored) / 2, atol=1e-6)
        training = copy.deepcopy(model).train()   # a copy: a training forward updates batch norm's statistics
        assert torch.allclose(training(pixels), training._logits(pixels), atol=1e-6)   # training sees one view
    save_classifier(model, tmp_path / "model")
    with torch.no_grad():
        assert torch.allclose(load_classifier(tmp_path / "model")(pixels), (one_view + mirrored) / 2, atol=1e-5)
    # A CNN saved before the setting existed predicts as it did: one view.
    meta_path = tmp_path / "model" / "modelsmith_image.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["template"]["test_time_flip"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    old = load_classifier(tmp_path / "model")
    with torch.no_grad():
        assert not old.template.test_time_flip and torch.allclose(old(pixels), one_view, atol=1e-5)


def test_dataset_statistics_are_the_pixels_mean_and_std():
    images, _ = colour_split(4, seed=3)
    mean, std = dataset_statistics(images, 16)
    red, green, blue = (torch.tensor(c, dtype=torch.float32) / 255 for c in COLOURS.values())
    expected = (red + green + blue) / 3
    assert torch.allclose(torch.tensor(mean), expected, atol=0.02)
    assert all(s > 0.1 for s in std)


def test_dataloader_workers_decode_the_same_batches(colour_data):
    from backend.tasks.image_classification.batches import make_loader

    train = colour_data[1]
    in_process = [(images, targets) for images, targets in make_loader(train, 8, shuffle=False)]
    in_worker = [(images, targets) for images, targets in make_loader(train, 8, shuffle=False, num_workers=1)]
    assert len(in_process) == len(in_worker) == 5
    for (a, y_a), (b, y_b) in zip(in_process, in_worker):
        assert a.dtype == torch.uint8 and a.shape[1:] == (3, 16, 16)
        assert torch.equal(a, b) and torch.equal(y_a, y_b)


def test_predict_zip_lists_every_image_and_scores_class_folders(tmp_path, colour_data):
    from backend.tasks.image_classification.predict import predict_zip
    from tests.backend.tasks.image_classification.conftest import image_bytes, write_zip

    model = build_classifier(TINY_CNN, LABELS, colour_data[3])
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


@pytest.mark.slow
def test_end_to_end_zip_to_stored_parquet_to_trained_model_to_reloaded_predictions(tmp_path, accelerator):
    from backend.tasks.image_classification.prepare import SplitOptions, ingest_image_zip, load_split
    from tests.backend.tasks.image_classification.conftest import write_zip

    zip_path = write_zip(tmp_path / "colours.zip", colour_entries(12, prefix="photos/"))
    folder, prepared = ingest_image_zip(zip_path, tmp_path / "datasets", options=SplitOptions(0.25, seed=3))
    train_split, validation = load_split(folder, "train"), load_split(folder, "validation")
    dataset = stored_dataset(tmp_path / "stored", train_split, validation, prepared.labels)
    result = train(image_config(epochs=6, batch_size=9), dataset, tmp_path / "run", on_progress=Recorder(),
                   should_stop=never, accelerator=accelerator)
    assert len(validation) == 9 and result.metrics["accuracy"] >= 0.8
    reloaded = load_classifier(tmp_path / "run")
    images = list(validation["image"])
    in_memory = predict_probabilities(result.predictor.model, images)
    assert (predict_probabilities(reloaded, images).argmax(1) == in_memory.argmax(1)).all()
    predicted = [reloaded.labels[i] for i in predict_probabilities(reloaded, images).argmax(1)]
    assert sum(p == t for p, t in zip(predicted, validation["label"])) / 9 == result.metrics["accuracy"]
