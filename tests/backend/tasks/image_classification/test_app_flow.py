"""Image classification through the app's own path: Services ingest -> the job runner trains -> predict.

The task is registered (backend/tasks/registry.py); everything here goes through the same calls
the Data, Train and Playground tabs and the CLI make.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip

TASK_NAME = "image-classification"
TINY_CNN = {"input_size": "16", "width": "8", "stages": "2", "blocks_per_stage": "1", "dropout": "0",
            "augmentation": "off"}


@pytest.fixture
def services(settings):
    from backend.services import build_services

    services = build_services(settings)
    yield services
    services.close()


def ingest_zip(services, path, **options):
    from backend.data.store import IngestOptions

    return services.ingest(path, IngestOptions(task=TASK_NAME, **options))


def tiny_config(dataset_id: int, **settings):
    from backend.config import apply_overrides, default_config

    overrides = {**TINY_CNN, "epochs": "6", "batch_size": "8", "learning_rate": "0.01", "log_every_steps": "1",
                 **{k: str(v) for k, v in settings.items()}}
    return apply_overrides(default_config(dataset_id, "cnn", TASK_NAME), overrides)


def test_ingest_stores_parquet_with_a_report_and_reuses_the_same_zip(services, tmp_path):
    import pandas as pd

    path = write_zip(tmp_path / "colours.zip", {**colour_entries(6), "notes.txt": b"not an image",
                                                "__MACOSX/red/._000.png": b"junk"})
    outcome = ingest_zip(services, path, validation_fraction=0.34)
    dataset = outcome.dataset
    assert dataset.task == TASK_NAME and dataset.text_column is None and dataset.label_column == "label"
    assert dataset.labels == sorted(COLOURS) and dataset.classes == {label: 6 for label in COLOURS}
    assert dataset.train_rows + dataset.validation_rows == 18 and dataset.validation_rows == 6
    assert dataset.input_columns == ["image"]
    train = pd.read_parquet(f"{dataset.path}/train.parquet")
    assert list(train.columns) == ["image", "label", "path", "width", "height", "sha256"]
    assert isinstance(train["image"][0], bytes) and set(train["width"]) == {16}
    report = dataset.report
    assert report["train_per_class"] == {label: 4 for label in sorted(COLOURS)}
    assert report["skipped_count"] == 1 and report["ignored_count"] == 1
    assert report["sizes"]["width_max"] == 16 and len(report["thumbnails"]["red"]) == 4
    assert json.loads(json.dumps(report)) == report  # stored as JSON with the dataset
    again = ingest_zip(services, path, validation_fraction=0.34)
    assert again.reused and again.dataset.id == dataset.id and len(services.list_datasets()) == 1


@pytest.mark.parametrize(("entries", "message"), [
    ({}, "holds no files"),
    ({"a/readme.txt": b"hello", "b/notes.txt": b"more"}, "holds no image"),
    ({"red/1.png": image_bytes()}, "Only one class"),
    ({"red/1.png": image_bytes(), "red/2.png": image_bytes(noise_seed=1), "blue/1.png": image_bytes((0, 0, 200))},
     "fewer than 2 usable images"),
    ({"../evil/1.png": image_bytes(), "ok/1.png": image_bytes()}, "outside"),
    ({"red/inner.zip": b"PK\x03\x04", "red/1.png": image_bytes()}, "another archive"),
])
def test_bad_zips_get_a_clear_message_and_store_nothing(services, tmp_path, entries, message):
    from backend.errors import UserError

    path = write_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(UserError, match=message):
        ingest_zip(services, path)
    assert services.list_datasets() == []
    assert not [p for p in services.settings.datasets_dir.iterdir()]  # no folder left behind


def test_a_table_or_a_damaged_zip_is_refused_with_a_clear_message(services, tmp_path):
    from backend.errors import UserError

    table = tmp_path / "data.csv"
    table.write_text("text,label\nhi,a\n", encoding="utf-8")
    with pytest.raises(UserError, match="is a table: give the zip its image paths point into"):
        ingest_zip(services, table)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    with pytest.raises(UserError, match="is not a .zip"):
        ingest_zip(services, notes)
    from backend.data.store import IngestOptions

    with pytest.raises(UserError, match="read by the image classification task: pick that task"):
        services.ingest(write_zip(tmp_path / "photos.zip", colour_entries(2)), IngestOptions())  # a text task
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="broken.zip|zip"):
        ingest_zip(services, broken)
    assert services.list_datasets() == []


def test_a_cnn_trains_through_the_runner_with_live_progress_and_predicts(services, tmp_path):
    from backend.tasks.registry import get_task

    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(8)),
                         validation_fraction=0.25).dataset
    run_id = services.runner.submit(tiny_config(dataset.id))
    services.runner.start()
    run = services.runner.wait(run_id, 180)
    assert run.status == "succeeded", run.error
    assert run.task == TASK_NAME and run.template == "cnn"
    losses = [m.value for m in services.get_metrics(run_id, ["train_loss"])]
    assert len(losses) >= 6 and losses[-1] < losses[0]
    assert len(services.get_metrics(run_id, ["eval_macro_f1"])) == 6  # one evaluation per epoch, live in the DB
    assert run.metrics["accuracy"] >= 0.8  # chance is 1/3
    assert all(item["true_label"] != item["predicted_label"] for item in run.metrics["misclassified"])
    folder = tmp_path / "home" / "runs"
    assert list(folder.rglob("model.safetensors")) and list(folder.rglob("modelsmith_image.json"))
    assert "sorts images into 3 classes" in (next(folder.rglob("README.md"))).read_text(encoding="utf-8")

    predictor = get_task(run.task).load_predictor(run.output_dir)
    probe = [image_bytes(COLOURS["green"], noise_seed=99), image_bytes(COLOURS["blue"], (40, 24), fmt="JPEG")]
    answers = predictor.predict_files(probe)
    assert [a["label"] for a in answers] == ["green", "blue"]
    assert sum(answers[0]["scores"].values()) == pytest.approx(1.0, abs=1e-5)

    # Download as a zip, import it back: a succeeded run of the same task that predicts the same.
    from backend.sharing.export import export_zip

    exported = export_zip(run, tmp_path / "exports/")
    assert {"model.safetensors", "config.json", "modelsmith_image.json", "README.md"} <= set(exported.files)
    imported = services.import_model(exported.path, name="colours again")
    assert imported.run.task == TASK_NAME and imported.run.template == "cnn" and imported.run.status == "succeeded"
    assert imported.labels == sorted(COLOURS)
    again = get_task(imported.run.task).load_predictor(imported.run.output_dir).predict_files(probe)
    for a, b in zip(answers, again):
        assert np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-6)


@pytest.mark.slow
def test_reloaded_predictions_equal_the_in_memory_model_and_resume_finishes(services, settings, tmp_path):
    from backend.errors import Cancelled, UserError
    from backend.training.run import train
    from backend.tasks.image_classification.predictor import load_image_predictor

    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(6)),
                         validation_fraction=0.34).dataset
    config = tiny_config(dataset.id, epochs=3)
    result = train(config, dataset, tmp_path / "run", on_progress=lambda step, values: None,
                   should_stop=lambda: False, settings=settings)
    probe = list(colour_entries(2, seed=7).values())
    in_memory = [a["scores"] for a in result.predictor.predict_files(probe)]
    reloaded = [a["scores"] for a in load_image_predictor(tmp_path / "run").predict_files(probe)]
    for a, b in zip(in_memory, reloaded):
        assert np.allclose(list(a.values()), list(b.values()), atol=1e-5)
    assert not (tmp_path / "run" / "checkpoints").exists()

    # Stop after the first optimizer step (mid-epoch): a checkpoint is saved, and a resume runs to the end.
    steps = []
    with pytest.raises(Cancelled):
        train(config, dataset, tmp_path / "stopped", on_progress=lambda step, values: steps.append(step),
              should_stop=lambda: len(set(steps)) >= 1, settings=settings)
    (checkpoint,) = (tmp_path / "stopped" / "checkpoints").iterdir()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["batches_done"] == 1  # mid-epoch
    resumed = train(config, dataset, tmp_path / "stopped", on_progress=lambda step, values: None,
                    should_stop=lambda: False, resume=True, settings=settings)
    assert resumed.stop_reason == "completed" and resumed.metrics["accuracy"] > 0
    # Resumed mid-epoch (same order, the batches done skipped, optimizer and RNG restored): the same
    # model as the uninterrupted run.
    assert resumed.best_step == result.best_step
    for a, b in zip(in_memory, [a["scores"] for a in resumed.predictor.predict_files(probe)]):
        assert np.allclose(list(a.values()), list(b.values()), atol=1e-5)
    with pytest.raises(UserError, match="not an image"):
        result.predictor.predict_files([b"plain text"], ["notes.txt"])


@pytest.mark.slow
def test_stop_from_the_runner_cancels_a_running_image_run(services, tmp_path):
    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(8))).dataset
    started = threading.Event()
    services.runner.add_listener(lambda run_id, step, values: started.set())
    run_id = services.runner.submit(tiny_config(dataset.id, epochs=100))
    services.runner.start()
    assert started.wait(60)
    services.runner.stop(run_id)
    run = services.runner.wait(run_id, 60)
    assert run.status == "cancelled"


def test_the_estimate_times_real_steps(services, tmp_path):
    from backend.training.estimate import estimate

    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(6))).dataset
    result = estimate(tiny_config(dataset.id), dataset)
    assert result.parameters > 0 and result.seconds_per_step > 0 and result.steps_per_epoch >= 1


@pytest.fixture
def tiny_vit_folder(tmp_path):
    """A tiny ViT with its image processor, saved as a pretrained folder (built from config, nothing downloaded)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, num_labels=7)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-vit"
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_the_pretrained_template_fine_tunes_through_the_runner_and_exports(services, tmp_path, tiny_vit_folder):
    import io

    from PIL import Image
    from transformers import pipeline

    from backend.config import apply_overrides, default_config
    from backend.sharing.export import export_zip
    from backend.tasks.registry import get_task

    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(8)),
                         validation_fraction=0.25).dataset
    config = apply_overrides(default_config(dataset.id, "vit", TASK_NAME), {
        "base_model": str(tiny_vit_folder), "augmentation": "off", "epochs": "8", "batch_size": "8",
        "learning_rate": "0.003", "log_every_steps": "1"})
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 180)
    assert run.status == "succeeded", run.error
    assert run.metrics["accuracy"] >= 0.8
    losses = [m.value for m in services.get_metrics(run_id, ["train_loss"])]
    assert losses[-1] < losses[0]
    probe = image_bytes(COLOURS["red"], (20, 20), noise_seed=8)
    # A plain Hugging Face folder: transformers' own pipeline loads it with our labels.
    answer = pipeline("image-classification", model=run.output_dir)(Image.open(io.BytesIO(probe)))
    assert answer[0]["label"] == "red"
    imported = services.import_model(export_zip(run, tmp_path / "vit.zip").path)
    assert imported.run.template == "vit" and imported.labels == sorted(COLOURS)
    predictor = get_task(imported.run.task).load_predictor(imported.run.output_dir)
    assert predictor.predict_files([probe])[0]["label"] == "red"


@pytest.mark.slow
def test_the_misclassified_gallery_shows_the_recorded_mistakes_from_the_validation_split(services, tmp_path):
    import pandas as pd

    dataset = ingest_zip(services, write_zip(tmp_path / "colours.zip", colour_entries(6)),
                         validation_fraction=0.5).dataset
    run_id = services.runner.submit(tiny_config(dataset.id, epochs=1, learning_rate=1e-6))  # barely trained
    services.runner.start()
    run = services.runner.wait(run_id, 120)
    assert run.status == "succeeded", run.error
    recorded = run.metrics["misclassified"]
    assert recorded  # a model that barely trained gets some of 9 validation images wrong
    gallery = services.misclassified_images(run_id)
    validation = pd.read_parquet(f"{dataset.path}/validation.parquet")
    assert len(gallery) == len(recorded)
    for (data, caption), item in zip(gallery, recorded):
        assert data == validation["image"][item["index"]]
        assert caption == f"{item['true_label']} → {item['predicted_label']} ({item['confidence']:.0%})"
    confidences = [item["confidence"] for item in recorded]
    assert confidences == sorted(confidences, reverse=True)


def test_a_separate_validation_zip_is_stored_as_the_validation_split(services, tmp_path):
    train = write_zip(tmp_path / "train.zip", colour_entries(4, seed=1))
    validation = write_zip(tmp_path / "val.zip", {**colour_entries(2, seed=2), "purple/1.png": image_bytes((90, 0, 90))})
    from backend.data.store import IngestOptions

    outcome = services.ingest(train, IngestOptions(task=TASK_NAME), validation)
    dataset = outcome.dataset
    assert (dataset.train_rows, dataset.validation_rows) == (12, 6)  # no class of its own: purple left out
    assert dataset.report["validation_source"] == "file"
    assert any("purple" in warning for warning in outcome.warnings)
    text_validation = tmp_path / "val.csv"
    text_validation.write_text("a,b\n", encoding="utf-8")
    from backend.errors import UserError

    with pytest.raises(UserError, match="val.csv\" is not a .zip"):
        services.ingest(train, IngestOptions(task=TASK_NAME, name="other"), text_validation)


def _zip_with_member(path, info, data):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, image in colour_entries(2).items():
            archive.writestr(name, image)
        archive.writestr(info, data)
    return path


def test_hostile_archives_and_images_reach_the_user_as_messages_and_store_nothing(services, tmp_path, monkeypatch):
    import stat
    import zipfile

    from PIL import Image

    from backend.errors import UserError

    link = zipfile.ZipInfo("red/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, image in colour_entries(2).items():
            archive.writestr(name, image)
        archive.writestr("red/huge.bmp", bytes(11 << 20))  # 11 MB of zeros deflate to ~11 KB
    cases = [(_zip_with_member(tmp_path / "link.zip", link, b"/etc/passwd"), "symbolic link"),
             (_zip_with_member(tmp_path / "abs.zip", zipfile.ZipInfo("/etc/x.png"), image_bytes()), "absolute path"),
             (bomb, "zip bomb")]
    for path, message in cases:
        with pytest.raises(UserError, match=message):
            ingest_zip(services, path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 16x16 images now count as decompression bombs
    with pytest.raises(UserError, match="a decompression bomb"):
        ingest_zip(services, write_zip(tmp_path / "pixels.zip", colour_entries(3)))
    assert services.list_datasets() == [] and not list(services.settings.datasets_dir.iterdir())


def test_empty_and_truncated_images_are_left_out_and_listed_while_the_rest_is_stored(services, tmp_path):
    jpeg = image_bytes(fmt="JPEG", size=(32, 32))
    path = write_zip(tmp_path / "mixed.zip", {**colour_entries(3), "red/empty.png": b"",
                                              "blue/cut.jpg": jpeg[: len(jpeg) // 2]})
    outcome = ingest_zip(services, path)
    report = outcome.dataset.report
    assert outcome.dataset.rows == 9 and report["corrupt_count"] == 2
    assert {item[0] for item in report["corrupt"]} == {"red/empty.png", "blue/cut.jpg"}
    assert any("could not be read and were left out" in warning for warning in outcome.warnings)
