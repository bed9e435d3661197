"""The validation report of an image dataset: plain data, no UI.

What a person checks before training: how many images each class has, which files were left out
and why, how big the images are, exact duplicates (within training, across training/validation,
and the same file under two labels), and a few thumbnails per class. Blocking errors stop the
upload: no image, fewer than 2 classes, a class with fewer than 2 images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.tasks.image_classification.images import ImageProblem, thumbnail_png

THUMBNAILS_PER_CLASS = 4
LISTED = 50  # files listed per problem; the counts stay exact


@dataclass(frozen=True)
class SizeStats:
    """Smallest, median and largest of widths and heights, in pixels."""

    width_min: int
    width_median: float
    width_max: int
    height_min: int
    height_median: float
    height_max: int


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with the same bytes: their sha256, paths and labels (in order)."""

    sha256: str
    paths: list[str]
    labels: list[str]


@dataclass
class ImageReport:
    """Everything the upload page shows about an image dataset."""

    train_per_class: dict[str, int]
    validation_per_class: dict[str, int]
    corrupt: list[tuple[str, str]]
    corrupt_count: int
    skipped: list[tuple[str, str]]
    skipped_count: int
    ignored_count: int
    sizes: SizeStats | None
    sizes_sample: list[tuple[int, int]]  # (width, height) of up to 2,000 images, for a scatter plot
    duplicates_in_train: int  # training images that repeat an earlier training image
    duplicates_across_splits: int  # validation images whose bytes are also in training
    conflicting_labels: list[DuplicateGroup]
    thumbnails: dict[str, list[bytes]]  # PNG bytes per class
    blocking: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def blocking_errors(per_class: dict[str, int]) -> list[str]:
    """Why the training images cannot be trained on, as messages that say how to fix it; [] when fine."""
    if not per_class:
        return ["No image was found. Upload a .zip with one folder per class holding .jpg/.png images."]
    errors = []
    if len(per_class) < 2:
        only = next(iter(per_class))
        errors.append(f"Only one class ('{only}') was found; a classifier needs at least 2. Put each class's "
                      "images in their own folder (e.g. cat/, dog/) and zip the folders together.")
    few = sorted(label for label, count in per_class.items() if count < 2)
    if few:
        errors.append(f"{len(few)} class(es) have fewer than 2 usable images: {', '.join(few[:20])}. Add images "
                      "to them or remove those folders.")
    return errors


def build_report(train: pd.DataFrame, validation: pd.DataFrame, *, corrupt, skipped, ignored: int,
                 warnings: list[str] | None = None) -> ImageReport:
    """The report of stored splits (DataFrames with reading.COLUMNS) and the files left out."""
    train_counts = _counts(train)
    both = pd.concat([train, validation], ignore_index=True)
    return ImageReport(
        train_per_class=train_counts, validation_per_class=_counts(validation),
        corrupt=list(corrupt)[:LISTED], corrupt_count=len(corrupt),
        skipped=list(skipped)[:LISTED], skipped_count=len(skipped), ignored_count=ignored,
        sizes=size_stats(both), sizes_sample=_size_sample(both),
        duplicates_in_train=int(train["sha256"].duplicated().sum()),
        duplicates_across_splits=int(validation["sha256"].isin(set(train["sha256"])).sum()),
        conflicting_labels=conflicting_labels(both),
        thumbnails=thumbnails(train), blocking=blocking_errors(train_counts), warnings=list(warnings or []))


def size_stats(frame: pd.DataFrame) -> SizeStats | None:
    """Min/median/max width and height; None without images."""
    if frame.empty:
        return None
    widths, heights = frame["width"].to_numpy(), frame["height"].to_numpy()
    return SizeStats(int(widths.min()), float(np.median(widths)), int(widths.max()),
                     int(heights.min()), float(np.median(heights)), int(heights.max()))


def conflicting_labels(frame: pd.DataFrame) -> list[DuplicateGroup]:
    """Groups of identical files that carry more than one label (listed up to LISTED groups)."""
    labels_per_hash = frame.groupby("sha256")["label"].nunique()
    groups = []
    for digest in labels_per_hash[labels_per_hash > 1].index[:LISTED]:
        rows = frame[frame["sha256"] == digest]
        groups.append(DuplicateGroup(sha256=digest, paths=rows["path"].tolist(), labels=rows["label"].tolist()))
    return groups


def thumbnails(frame: pd.DataFrame, per_class: int = THUMBNAILS_PER_CLASS) -> dict[str, list[bytes]]:
    """PNG thumbnails of the first few images of each class."""
    result: dict[str, list[bytes]] = {}
    for label, rows in frame.groupby("label", sort=True):
        pictures = []
        for data in rows["image"].head(per_class):
            try:
                pictures.append(thumbnail_png(data))
            except ImageProblem:  # stored images were decoded at ingest; this guards stale data only
                continue
        result[str(label)] = pictures
    return result


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(label): int(count) for label, count in sorted(frame["label"].value_counts().items())}


def _size_sample(frame: pd.DataFrame, limit: int = 2000) -> list[tuple[int, int]]:
    sample = frame if len(frame) <= limit else frame.sample(limit, random_state=0)
    return list(zip(sample["width"].astype(int).tolist(), sample["height"].astype(int).tolist()))
