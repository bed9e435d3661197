"""The image task's `prepare`: a zip of class folders -> the PreparedDataset the shared store writes.

backend.data.store.ingest() calls Task.prepare, then stores the splits as Parquet (image bytes,
label, path, width, height, sha256) and the DB row, and reuses a dataset of the same content
hash. Everything that refuses an upload (a hostile archive, a decompression bomb, no image, fewer
than 2 classes, ...) raises a UserError here, before anything is written.

The report is JSON (it is stored with the dataset): the read report's counts and lists, and the
thumbnails as base64 PNGs (a few per class, for the first classes only, so the row stays small).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import asdict
from pathlib import Path

from backend.data.store import IngestOptions, PreparedDataset
from backend.errors import UserError
from backend.tasks.image_classification.archive import ArchiveLimits
from backend.tasks.image_classification.prepare import TASK, SplitOptions, prepare_images
from backend.tasks.image_classification.reading import COLUMNS, TABLE_READERS, read_image_table, read_image_zip
from backend.tasks.image_classification.report import ImageReport

log = logging.getLogger(__name__)

THUMBNAIL_CLASSES = 40  # classes whose thumbnails are kept in the report (the counts cover all)
COLUMN_TYPES = [{"name": "image", "type": "image"}, {"name": "label", "type": "string"}]


def prepare_image_dataset(path: Path, options: IngestOptions, validation_path: Path | None, max_bytes: int,
                          max_rows: int) -> PreparedDataset:
    """Read, check, split and describe a zip of class folders (and an optional validation zip), or a
    table of image paths and labels with the zip they point into (`options.images_zip`)."""
    path = Path(path)
    limits = ArchiveLimits(max_files=min(ArchiveLimits().max_files, max_rows))
    if path.suffix.lower() in TABLE_READERS:
        train = _read_table_upload(path, options, max_bytes, limits)
    else:
        _check_upload(path, max_bytes)
        train = read_image_zip(path, limits, f'"{path.name}"')
    if validation_path is not None:
        _check_upload(Path(validation_path), max_bytes)
    validation = (read_image_zip(validation_path, limits, f'The validation zip "{Path(validation_path).name}"')
                  if validation_path is not None else None)
    prepared = prepare_images(train, validation, SplitOptions(options.validation_fraction, options.seed))
    report = prepared.report
    warnings = image_warnings(report)
    classes = {label: report.train_per_class.get(label, 0) + report.validation_per_class.get(label, 0)
               for label in prepared.labels}
    rows = len(prepared.train) + len(prepared.validation)
    summary = {"task": options.task or TASK, "source": path.name, "format": "zip", "rows": rows,
               "train_rows": len(prepared.train), "validation_rows": len(prepared.validation),
               "validation_source": "file" if validation_path is not None else "split",
               "validation_fraction": options.validation_fraction, "seed": options.seed, "classes": classes,
               "labels": prepared.labels, "warnings": warnings, **report_dict(report)}
    return PreparedDataset(task=options.task, name=options.name or path.stem, text_column=None, label_column="label",
                           train=prepared.train[list(COLUMNS)], validation=prepared.validation[list(COLUMNS)],
                           labels=prepared.labels, classes=classes, report=summary, warnings=warnings,
                           content_hash=prepared.content_hash, columns=list(COLUMN_TYPES), input_columns=["image"])


def _read_table_upload(path: Path, options: IngestOptions, max_bytes: int, limits: ArchiveLimits):
    """A table whose image column holds paths inside options.images_zip (its columns picked or guessed)."""
    if not options.images_zip:
        raise UserError(f'"{path.name}" is a table: give the zip its image paths point into as well (in the Data '
                        'tab: the "Zip of the images" box; on the command line: --images photos.zip), or upload a '
                        "zip with one folder per class instead.")
    if not path.is_file():
        raise UserError(f'"{path.name}" was not found. Check the path and upload again.')
    if path.stat().st_size > max_bytes:
        raise UserError(f'"{path.name}" is over the upload limit of {max_bytes / 2**20:,.0f} MB.')
    _check_upload(Path(options.images_zip), max_bytes)
    return read_image_table(path, options.images_zip, image_column=options.text_column,
                            label_column=options.label_column, limits=limits)


def _check_upload(path: Path, max_bytes: int) -> None:
    if path.suffix.lower() != ".zip":
        raise UserError(f'"{path.name}" is not a .zip. Image classification reads a zip with one folder per class '
                        "(cat/001.jpg, dog/002.png, ...): zip the class folders and upload the zip.")
    if not path.is_file():
        raise UserError(f'"{path.name}" was not found. Check the path and upload again.')
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f'"{path.name}" is {size / 2**20:,.0f} MB; uploads may be at most {max_bytes / 2**20:,.0f} MB. '
                        "Upload fewer images, or raise MODELSMITH_MAX_UPLOAD_MB.")


def image_warnings(report: ImageReport) -> list[str]:
    """What the person should know about images that were stored (or left out)."""
    warnings = list(report.warnings)
    if report.corrupt_count:
        examples = ", ".join(path for path, _ in report.corrupt[:3])
        warnings.append(f"{report.corrupt_count:,} image file(s) could not be read and were left out (e.g. {examples}).")
    if report.skipped_count:
        warnings.append(f"{report.skipped_count:,} file(s) that are not images in class folders were left out.")
    if report.duplicates_in_train:
        warnings.append(f"{report.duplicates_in_train:,} training image(s) repeat an earlier image exactly; kept.")
    if report.duplicates_across_splits:
        warnings.append(f"{report.duplicates_across_splits:,} validation image(s) are also in the training split, so "
                        "validation scores will look better than they are. Remove the duplicates for an honest score.")
    if report.conflicting_labels:
        warnings.append(f"{len(report.conflicting_labels):,} identical file(s) carry more than one label; a model "
                        "cannot learn both. Check those files.")
    return warnings


def report_dict(report: ImageReport) -> dict:
    """The image report as JSON-able data: lists for tuples, base64 PNGs for thumbnails."""
    data = asdict(report)
    data["corrupt"] = [list(item) for item in report.corrupt]
    data["skipped"] = [list(item) for item in report.skipped]
    data["sizes_sample"] = [list(item) for item in report.sizes_sample]
    data["thumbnails"] = {label: [base64.b64encode(png).decode("ascii") for png in pictures]
                          for label, pictures in list(report.thumbnails.items())[:THUMBNAIL_CLASSES]}
    data.pop("warnings")  # the dataset's warnings, with those above, are stored once
    return data
