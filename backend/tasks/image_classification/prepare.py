"""Turn read images into a checked, split, hashed dataset, and store it as Parquet.

prepare_images() is pure: check the classes, split (a separate validation upload, or a seeded
stratified split of the training images that keeps their order), report, hash. Anything blocking
raises BlockingErrors (a UserError that carries the report) before anything is written.
store_images() writes train.parquet and validation.parquet into a temporary folder and renames
it into place, so a failed write leaves nothing behind; the same content stores to the same
folder name (its hash), so uploading the same zip again reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from backend.errors import UserError
from backend.tasks.image_classification.archive import ArchiveLimits
from backend.tasks.image_classification.reading import COLUMNS, ImageRead, read_image_zip
from backend.tasks.image_classification.report import ImageReport, blocking_errors, build_report

log = logging.getLogger(__name__)

TASK = "image-classification"
HASH_VERSION = 1
SPLITS = ("train", "validation")
SCHEMA = pa.schema([("image", pa.binary()), ("label", pa.string()), ("path", pa.string()),
                    ("width", pa.int64()), ("height", pa.int64()), ("sha256", pa.string())])


class BlockingErrors(UserError):
    """The images cannot be trained on; `report` says what was found."""

    def __init__(self, message: str, report: ImageReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class SplitOptions:
    """How the validation split is made when no validation upload is given."""

    validation_fraction: float = 0.1
    seed: int = 42


@dataclass(frozen=True, eq=False)
class PreparedImages:
    """Splits ready to store (DataFrames with reading.COLUMNS), their labels, report and hash."""

    train: pd.DataFrame
    validation: pd.DataFrame
    labels: list[str]
    report: ImageReport
    content_hash: str


def prepare_images(train: ImageRead, validation: ImageRead | None = None,
                   options: SplitOptions = SplitOptions()) -> PreparedImages:
    """Check, split, report and hash; BlockingErrors when the images cannot be trained on."""
    corrupt = train.corrupt + (validation.corrupt if validation else [])
    skipped = train.skipped + (validation.skipped if validation else [])
    ignored = train.ignored + (validation.ignored if validation else 0)
    warnings = train.warnings + (validation.warnings if validation else [])
    per_class = train.frame["label"].value_counts().to_dict()
    if blocking_errors(per_class):
        report = build_report(train.frame, train.frame.iloc[:0], corrupt=corrupt, skipped=skipped,
                              ignored=ignored, warnings=warnings)
        raise BlockingErrors(" ".join(report.blocking), report)
    if validation is None:
        train_frame, validation_frame = stratified_split(train.frame, options)
    else:
        train_frame, validation_frame = train.frame, _known_labels(validation.frame, set(per_class), warnings)
        if validation_frame.empty:
            raise UserError("The validation zip has no readable image of the training classes "
                            f"({', '.join(sorted(per_class)[:20])}). Use the same class folder names in both "
                            "zips, or leave the validation zip out to split the training images.")
    labels = sorted(per_class)
    report = build_report(train_frame, validation_frame, corrupt=corrupt, skipped=skipped, ignored=ignored,
                          warnings=warnings)
    header = {"task": TASK, "labels": labels,
              "split": "upload" if validation is not None else [options.validation_fraction, options.seed]}
    digest = content_hash(header, train_frame, validation_frame)
    return PreparedImages(train=train_frame, validation=validation_frame, labels=labels, report=report,
                          content_hash=digest)


def stratified_split(frame: pd.DataFrame, options: SplitOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split with every class in both parts; both keep the source order."""
    classes = frame["label"].nunique()
    # Each class needs an image on each side: at least one validation image per class.
    size = min(max(round(len(frame) * options.validation_fraction), classes), len(frame) - classes)
    train_index, validation_index = train_test_split(
        range(len(frame)), test_size=size, stratify=frame["label"], random_state=options.seed)
    return (frame.iloc[sorted(train_index)].reset_index(drop=True),
            frame.iloc[sorted(validation_index)].reset_index(drop=True))


def _known_labels(validation: pd.DataFrame, known: set[str], warnings: list[str]) -> pd.DataFrame:
    unknown = sorted(set(validation["label"]) - known)
    if unknown:
        warnings.append(f"The validation images of class(es) {', '.join(unknown[:20])} were left out: those "
                        "classes have no training images.")
    return validation[validation["label"].isin(known)].reset_index(drop=True)


def content_hash(header: dict, *splits: pd.DataFrame) -> str:
    """sha256 over the options that shape the data and each split's (path, label, image sha256) rows."""
    digest = hashlib.sha256(json.dumps({"version": HASH_VERSION, **header}, sort_keys=True).encode())
    for frame in splits:
        digest.update(b"\x00split")
        for path, label, sha in zip(frame["path"], frame["label"], frame["sha256"]):
            digest.update(f"{path}\x1f{label}\x1f{sha}\x1e".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def store_images(prepared: PreparedImages, datasets_dir: Path) -> Path:
    """Write the splits as Parquet under datasets_dir/<hash>; an existing folder of that hash is reused."""
    datasets_dir = Path(datasets_dir)
    final = datasets_dir / prepared.content_hash[:16]
    if (final / "train.parquet").is_file():
        log.info("image dataset %s already stored", final.name)
        return final
    datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".images-", dir=datasets_dir))
    try:
        for split, frame in zip(SPLITS, (prepared.train, prepared.validation)):
            table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=SCHEMA, preserve_index=False)
            pq.write_table(table, staging / f"{split}.parquet", compression="none")  # images are compressed
        (staging / "labels.json").write_text(json.dumps(prepared.labels, ensure_ascii=False), encoding="utf-8")
        try:
            staging.rename(final)
        except OSError:  # another upload of the same content got there first: reuse it
            if not (final / "train.parquet").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("stored image dataset %s: %d train, %d validation", final.name, len(prepared.train),
             len(prepared.validation))
    return final


def load_split(folder: Path, split: str) -> pd.DataFrame:
    """One stored split as a DataFrame with reading.COLUMNS."""
    return pq.read_table(Path(folder) / f"{split}.parquet").to_pandas()


def ingest_image_zip(train_zip, datasets_dir: Path, validation_zip=None, options: SplitOptions = SplitOptions(),
                     limits: ArchiveLimits = ArchiveLimits()) -> tuple[Path, PreparedImages]:
    """Read, prepare and store a zip of class folders (and an optional validation zip); the stored folder."""
    train = read_image_zip(train_zip, limits, "The training zip")
    validation = read_image_zip(validation_zip, limits, "The validation zip") if validation_zip else None
    prepared = prepare_images(train, validation, options)
    return store_images(prepared, datasets_dir), prepared
