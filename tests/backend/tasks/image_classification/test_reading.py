"""Reading zips of class folders and tables of paths; splitting, hashing and storing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from backend.errors import UserError
from backend.tasks.image_classification.prepare import (SplitOptions, ingest_image_zip, load_split,
                                                        prepare_images)
from backend.tasks.image_classification.reading import read_image_table, read_image_zip
from tests.backend.tasks.image_classification.conftest import colour_entries, image_bytes, write_zip


def test_both_zip_layouts_give_the_same_classes(tmp_path, cifar_entries):
    with_top = write_zip(tmp_path / "top.zip", cifar_entries)  # cifar10_sample/<class>/x.jpg
    without = write_zip(tmp_path / "flat.zip", {name.split("/", 1)[1]: data for name, data in cifar_entries.items()})
    read_top, read_flat = read_image_zip(with_top), read_image_zip(without)
    assert len(read_top.frame) == len(read_flat.frame) == 200
    assert read_top.frame["label"].value_counts().to_dict() == read_flat.frame["label"].value_counts().to_dict()
    assert set(read_top.frame["label"]) == {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                            "horse", "ship", "truck"}
    assert read_top.frame["width"].eq(32).all() and read_top.frame["height"].eq(32).all()
    assert read_top.frame["sha256"].str.len().eq(64).all()
    assert read_top.corrupt == [] and read_top.skipped == []


def test_files_at_the_root_are_skipped_not_labelled(tmp_path):
    entries = colour_entries(3)
    entries["stray.png"] = image_bytes()
    read = read_image_zip(write_zip(tmp_path / "a.zip", entries))
    assert ("stray.png", "not inside a class folder") in read.skipped
    assert len(read.frame) == 9


def test_split_folders_are_not_taken_for_classes(tmp_path):
    entries = {**colour_entries(2, prefix="data/train/"), **colour_entries(2, prefix="data/val/")}
    with pytest.raises(UserError, match="look like splits"):
        read_image_zip(write_zip(tmp_path / "splits.zip", entries))


def test_stratified_split_is_seeded_keeps_order_and_every_class(colour_zip):
    read = read_image_zip(colour_zip)
    first = prepare_images(read, options=SplitOptions(validation_fraction=0.34, seed=1))
    again = prepare_images(read, options=SplitOptions(validation_fraction=0.34, seed=1))
    other = prepare_images(read, options=SplitOptions(validation_fraction=0.34, seed=2))
    assert len(first.validation) == 6 and len(first.train) == 12
    assert first.validation["label"].value_counts().to_dict() == {"red": 2, "green": 2, "blue": 2}
    assert first.validation["path"].tolist() == again.validation["path"].tolist()
    assert first.content_hash == again.content_hash != other.content_hash
    order = read.frame["path"].tolist()
    assert first.train["path"].tolist() == sorted(first.train["path"], key=order.index)
    assert first.labels == ["blue", "green", "red"]


def test_separate_validation_zip_is_used_and_unknown_classes_left_out(tmp_path, colour_zip):
    entries = colour_entries(2, seed=5)
    entries["purple/000.png"] = image_bytes((120, 0, 120))
    validation = read_image_zip(write_zip(tmp_path / "val.zip", entries))
    prepared = prepare_images(read_image_zip(colour_zip), validation)
    assert len(prepared.train) == 18
    assert sorted(prepared.validation["label"].unique()) == ["blue", "green", "red"]
    assert any("purple" in warning for warning in prepared.report.warnings)


def test_a_validation_zip_without_the_training_classes_is_refused(tmp_path, colour_zip):
    other = read_image_zip(write_zip(tmp_path / "val.zip", {f"cats/{i}.png": image_bytes(noise_seed=i)
                                                            for i in range(3)}))
    with pytest.raises(UserError, match=r"no readable image of the training classes \(blue, green, red\)"):
        prepare_images(read_image_zip(colour_zip), other)


def test_store_writes_parquet_and_the_same_zip_reuses_it(tmp_path, colour_zip):
    datasets = tmp_path / "datasets"
    folder, prepared = ingest_image_zip(colour_zip, datasets)
    train = load_split(folder, "train")
    assert list(train.columns) == ["image", "label", "path", "width", "height", "sha256"]
    assert train["image"].tolist() == prepared.train["image"].tolist()
    assert json.loads((folder / "labels.json").read_text()) == ["blue", "green", "red"]
    folder_again, _ = ingest_image_zip(colour_zip, datasets)
    assert folder_again == folder
    assert [p.name for p in datasets.iterdir()] == [folder.name]  # no second copy, no staging left


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_table_of_paths_beside_a_zip(tmp_path, fmt):
    images = {f"pics/{i}.png": image_bytes(colour, noise_seed=i) for i, colour in
              enumerate([(200, 0, 0)] * 3 + [(0, 0, 200)] * 3)}
    images_zip = write_zip(tmp_path / "images.zip", images)
    table = pd.DataFrame({"File Name": [f"{i}.png" for i in range(6)] + ["missing.png", "../../etc/passwd"],
                          "Category": ["red"] * 3 + ["blue"] * 3 + ["red", "red"]})
    path = tmp_path / f"labels.{fmt}"
    {"csv": lambda: table.to_csv(path, index=False), "parquet": lambda: table.to_parquet(path),
     "jsonl": lambda: table.to_json(path, orient="records", lines=True)}[fmt]()
    read = read_image_table(path, images_zip, image_column="File Name", label_column="Category")
    assert read.frame["label"].tolist() == ["red"] * 3 + ["blue"] * 3
    assert read.frame["path"].tolist()[0] == "pics/0.png"  # found below the zip's single top folder
    assert read.skipped == [("missing.png", "not found in the images zip (row 8)"),
                            ("../../etc/passwd", "not found in the images zip (row 9)")]  # only zip members are read


def test_table_columns_are_guessed_or_named_clearly(tmp_path):
    images_zip = write_zip(tmp_path / "images.zip", {"a.png": image_bytes(), "b.png": image_bytes((0, 0, 200))})
    (tmp_path / "t.csv").write_text("image,label\na.png,red\nb.png,blue\n", encoding="utf-8")
    assert read_image_table(tmp_path / "t.csv", images_zip).frame["label"].tolist() == ["red", "blue"]
    (tmp_path / "u.csv").write_text("x,y_true\na.png,red\n", encoding="utf-8")
    with pytest.raises(UserError, match="Which column holds the image-path"):
        read_image_table(tmp_path / "u.csv", images_zip)
    with pytest.raises(UserError, match="has no column 'nope'"):
        read_image_table(tmp_path / "t.csv", images_zip, image_column="nope")
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(UserError, match="not a table"):
        read_image_table(tmp_path / "t.xlsx", images_zip)
