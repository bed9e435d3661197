"""The validation report: counts, left-out files, sizes, duplicates, thumbnails, blocking errors."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from backend.tasks.image_classification.prepare import BlockingErrors, SplitOptions, prepare_images
from backend.tasks.image_classification.reading import read_image_zip
from backend.tasks.image_classification.report import blocking_errors
from tests.backend.tasks.image_classification.conftest import colour_entries, image_bytes, write_zip


def test_report_counts_sizes_and_left_out_files(tmp_path):
    entries = {**colour_entries(4), "red/wide.png": image_bytes(size=(40, 10), noise_seed=99),
               "red/broken.jpg": b"\xff\xd8\xff", "notes/readme.txt": b"hi", "__MACOSX/x": b"x"}
    validation = read_image_zip(write_zip(tmp_path / "v.zip", colour_entries(2, seed=7)))
    report = prepare_images(read_image_zip(write_zip(tmp_path / "t.zip", entries)), validation).report
    assert report.train_per_class == {"blue": 4, "green": 4, "red": 5}
    assert report.validation_per_class == {"blue": 2, "green": 2, "red": 2}
    assert report.corrupt_count == 1 and report.corrupt[0][0] == "red/broken.jpg"
    assert report.skipped_count == 1 and report.ignored_count == 1
    sizes = report.sizes
    assert (sizes.width_min, sizes.width_median, sizes.width_max) == (16, 16.0, 40)
    assert (sizes.height_min, sizes.height_max) == (10, 16)
    assert len(report.sizes_sample) == 19 and (40, 10) in report.sizes_sample
    assert report.blocking == []


def test_report_finds_duplicates_within_across_and_with_conflicting_labels(tmp_path):
    same = image_bytes((5, 5, 5), noise_seed=1)
    train_entries = {**colour_entries(3), "red/copy_a.png": same, "red/copy_b.png": same, "blue/copy_c.png": same}
    val_entries = {**colour_entries(2, seed=9), "green/leak.png": colour_entries(3)["green/000.png"]}
    train = read_image_zip(write_zip(tmp_path / "t.zip", train_entries))
    validation = read_image_zip(write_zip(tmp_path / "v.zip", val_entries))
    report = prepare_images(train, validation).report
    assert report.duplicates_in_train == 2  # copy_b and copy_c repeat copy_a
    assert report.duplicates_across_splits == 1  # green/leak.png is green/000.png of training
    assert len(report.conflicting_labels) == 1
    group = report.conflicting_labels[0]
    assert sorted(group.labels) == ["blue", "red", "red"] and "blue/copy_c.png" in group.paths


def test_thumbnails_a_few_per_class(colour_zip):
    report = prepare_images(read_image_zip(colour_zip), options=SplitOptions(validation_fraction=0.2)).report
    assert sorted(report.thumbnails) == ["blue", "green", "red"]
    for pictures in report.thumbnails.values():
        assert len(pictures) == 4
        assert Image.open(io.BytesIO(pictures[0])).format == "PNG"


def test_blocking_errors():
    assert "No image was found" in blocking_errors({})[0]
    assert "Only one class ('cat')" in blocking_errors({"cat": 10})[0]
    assert blocking_errors({"cat": 10, "dog": 1, "eel": 0})[-1].startswith("2 class(es) have fewer than 2")
    assert blocking_errors({"cat": 2, "dog": 2}) == []


def test_one_class_blocks_with_its_report(tmp_path):
    zip_path = write_zip(tmp_path / "one.zip", {f"cats/cat{i}.png": image_bytes(noise_seed=i) for i in range(3)})
    with pytest.raises(BlockingErrors, match="Only one class") as caught:
        prepare_images(read_image_zip(zip_path))
    assert caught.value.report.train_per_class == {"cats": 3}
    assert caught.value.report.blocking and caught.value.report.thumbnails["cats"]
