"""The CLI with image classification: ingest a zip, train a tiny cnn, predict image files and a zip."""

from __future__ import annotations

import pytest

from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip
from tests.test_cli import home, run_cli  # noqa: F401 (the fixture)

TINY_CNN = ["--set", "input_size=16", "--set", "width=8", "--set", "stages=2", "--set", "blocks_per_stage=1",
            "--set", "augmentation=off", "--set", "batch_size=8", "--set", "learning_rate=0.01"]


@pytest.mark.slow
def test_ingest_train_and_predict_images_from_the_shell(capsys, home, tmp_path):  # noqa: F811
    path = write_zip(tmp_path / "colours.zip", colour_entries(8, prefix="train/"))
    code, dataset = run_cli(capsys, "ingest", "--task", "image-classification", str(path))
    assert code == 0, dataset
    assert dataset["task"] == "image-classification" and dataset["classes"] == {label: 8 for label in sorted(COLOURS)}
    assert dataset["text_column"] is None and dataset["rows"] == 24

    code, run = run_cli(capsys, "train", "--dataset", str(dataset["dataset_id"]), "--template", "cnn",
                        "--set", "epochs=15", *TINY_CNN)
    assert code == 0 and run["status"] == "succeeded", run
    assert run["metrics"]["accuracy"] >= 0.8 and set(run["metrics"]["per_class"]) == set(COLOURS)

    (tmp_path / "red.png").write_bytes(image_bytes(COLOURS["red"], (20, 20), noise_seed=5))
    (tmp_path / "blue.jpg").write_bytes(image_bytes(COLOURS["blue"], (30, 18), fmt="JPEG"))
    probe = write_zip(tmp_path / "probe.zip", colour_entries(2, seed=9))
    code, answers = run_cli(capsys, "predict", "--run", str(run["run_id"]), str(tmp_path / "red.png"),
                            str(tmp_path / "blue.jpg"), "--file", str(probe))
    assert code == 0, answers
    images = {a["file"]: a for a in answers if "label" in a}
    assert images[str(tmp_path / "red.png")]["label"] == "red" and images[str(tmp_path / "blue.jpg")]["label"] == "blue"
    scores = list(images[str(tmp_path / "red.png")]["scores"].values())
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-4)
    (batch,) = [a for a in answers if "predictions" in a]
    assert batch["images"] == 6 and batch["metrics"]["accuracy"] >= 0.8
    assert {row["true_label"] for row in batch["predictions"]} == set(COLOURS)

    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    code, result = run_cli(capsys, "predict", "--run", str(run["run_id"]), str(tmp_path / "notes.txt"))
    assert code == 2 and "is not an image" in result["error"]
    code, result = run_cli(capsys, "predict", "--run", str(run["run_id"]), str(tmp_path / "gone.png"))
    assert code == 2 and "was not found" in result["error"]
    code, result = run_cli(capsys, "predict", "--run", str(run["run_id"]))
    assert code == 2 and "Give image files" in result["error"]


def test_bad_image_uploads_exit_2_with_a_message(capsys, home, tmp_path):  # noqa: F811
    code, result = run_cli(capsys, "ingest", "--task", "image-classification", str(tmp_path / "missing.zip"))
    assert code == 2 and "was not found" in result["error"]
    one_class = write_zip(tmp_path / "one.zip", {"cat/1.png": image_bytes(), "cat/2.png": image_bytes(noise_seed=2)})
    code, result = run_cli(capsys, "ingest", "--task", "image-classification", str(one_class))
    assert code == 2 and "Only one class ('cat')" in result["error"]
    code, result = run_cli(capsys, "runs")
    assert code == 0 and result == []


@pytest.mark.slow
def test_cifar_sample_ingests_and_trains_briefly(capsys, home, shared_data):  # noqa: F811
    """The real CIFAR-10 sample (1,000 JPEGs under train/<class>/): stored, then one short epoch."""
    code, dataset = run_cli(capsys, "ingest", "--task", "image-classification",
                            str(shared_data / "cifar10" / "sample_1k.zip"))
    assert code == 0, dataset
    assert len(dataset["classes"]) == 10 and set(dataset["classes"].values()) == {100}
    assert dataset["validation_rows"] == 100
    code, run = run_cli(capsys, "train", "--dataset", str(dataset["dataset_id"]), "--template", "cnn",
                        "--set", "epochs=1", "--set", "width=8", "--set", "stages=2", "--set", "batch_size=64")
    assert code == 0 and run["status"] == "succeeded", run
    assert run["metrics"]["accuracy"] > 0.1  # one epoch of a tiny network: above chance (0.1), no more is claimed


def test_a_table_of_image_paths_with_its_zip_ingests(capsys, home, tmp_path):  # noqa: F811
    """labels.csv (file, category) naming images inside photos.zip, which has no class folders."""
    entries = {f"photos/{i:03d}.png": data for i, data in enumerate(colour_entries(3).values())}
    images = write_zip(tmp_path / "photos.zip", entries)
    labels = [name.split("/")[0] for name in colour_entries(3)]  # same order as above
    table = tmp_path / "labels.csv"
    table.write_text("file,category\n" + "".join(f"{i:03d}.png,{label}\n" for i, label in enumerate(labels))
                     + "missing.png,red\n", encoding="utf-8")
    code, dataset = run_cli(capsys, "ingest", "--task", "image-classification", str(table), "--images", str(images))
    assert code == 0, dataset
    assert dataset["classes"] == {label: 3 for label in sorted(COLOURS)} and dataset["rows"] == 9
    code, result = run_cli(capsys, "ingest", "--task", "image-classification", str(table))
    assert code == 2 and "give the zip its image paths point into" in result["error"]
