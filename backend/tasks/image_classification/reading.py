"""Read an upload into a table of images: a zip of class folders, or a table of paths into a zip.

Both give an `ImageRead`: a DataFrame with one row per readable image

    image (bytes, as uploaded) | label | path | width | height | sha256 (of the bytes)

plus the files that could not be used (corrupt, missing, not images), listed with why. A corrupt
file never stops the upload; a hostile archive or a decompression-bomb image refuses all of it.
Width and height are those of the upright image (after EXIF orientation).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from backend.errors import UserError
from backend.tasks.image_classification.archive import (ArchiveLimits, ArchiveListing, Member, list_images,
                                                         open_archive, read_member)
from backend.tasks.image_classification.images import ImageProblem, ImageTooLarge, load_rgb, max_pixels

log = logging.getLogger(__name__)

COLUMNS = ("image", "label", "path", "width", "height", "sha256")
SPLIT_FOLDERS = {"train", "training", "val", "valid", "validation", "dev", "test", "testing"}
IMAGE_COLUMN_HINTS = ("image", "images", "img", "path", "file", "filename", "file_name", "filepath", "image_path")
LABEL_COLUMN_HINTS = ("label", "labels", "class", "category", "target", "y", "tag")
TABLE_READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".json": "json"}


@dataclass
class ImageRead:
    """Readable images of one upload, and the files left out with the reason."""

    frame: pd.DataFrame
    corrupt: list[tuple[str, str]] = field(default_factory=list)   # (path, why): image files that failed
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, why): not images, no class, ...
    ignored: int = 0                                               # __MACOSX/, .DS_Store, hidden files
    warnings: list[str] = field(default_factory=list)


def read_image_zip(path, limits: ArchiveLimits = ArchiveLimits(), what: str = "The zip") -> ImageRead:
    """Read a zip whose folders are the classes (`cat/1.jpg` or `train/cat/1.jpg`)."""
    with open_archive(path, what) as archive:
        listing = list_images(archive, limits)
        _require_images(listing, what)
        labels = class_of([member.path for member in listing.images])
        read = ImageRead(frame=pd.DataFrame(columns=list(COLUMNS)), skipped=list(listing.skipped),
                         ignored=listing.ignored, warnings=list(listing.warnings))
        chosen = []
        for member in listing.images:
            if labels[member.path] is None:
                read.skipped.append((member.path, "not inside a class folder"))
            else:
                chosen.append((member, labels[member.path]))
        read.frame = _decode_all(archive, chosen, read.corrupt)
    _log_read(what, read)
    return read


def class_of(paths: list[str]) -> dict[str, str | None]:
    """Each path's class: its first folder, below one top folder that holds them all (None at the root)."""
    parts = {path: PurePosixPath(path).parts for path in paths}
    tops = {p[0] for p in parts.values()}
    strip = 1 if len(tops) == 1 and any(len(p) >= 3 for p in parts.values()) else 0
    labels = {path: (p[strip] if len(p) >= strip + 2 else None) for path, p in parts.items()}
    classes = {label for label in labels.values() if label is not None}
    if classes and classes <= SPLIT_FOLDERS and all(len(p) >= strip + 3 for p in parts.values()):
        raise UserError(f"The zip's folders look like splits ({', '.join(sorted(classes))}), not classes. Upload "
                        "the training folder's zip (its subfolders are the classes), and the validation "
                        "folder's zip as the validation set.")
    return labels


def read_image_table(table_path, images_zip, image_column: str | None = None, label_column: str | None = None,
                     limits: ArchiveLimits = ArchiveLimits()) -> ImageRead:
    """Read a CSV/TSV/Parquet/JSONL table whose image column holds paths inside `images_zip`."""
    table = _read_table(Path(table_path))
    image_column = image_column or _guess_column(table, IMAGE_COLUMN_HINTS, "image-path")
    label_column = label_column or _guess_column(table, LABEL_COLUMN_HINTS, "label")
    for column in (image_column, label_column):
        if column not in table.columns:
            raise UserError(f"The table has no column '{column}'. "
                            f"Its columns are: {', '.join(map(str, table.columns))}.")
    with open_archive(images_zip, "The images zip") as archive:
        listing = list_images(archive, limits)
        _require_images(listing, "The images zip")
        members = _member_index(listing.images)
        read = ImageRead(frame=pd.DataFrame(columns=list(COLUMNS)), ignored=listing.ignored,
                         warnings=list(listing.warnings))
        chosen = []
        for row, (image_path, label) in enumerate(zip(table[image_column], table[label_column]), start=2):
            key = _normalise_path(image_path)
            if not key:
                read.skipped.append((f"row {row}", f"empty '{image_column}'"))
            elif not label.strip():
                read.skipped.append((key, f"empty '{label_column}' (row {row})"))
            elif key not in members:
                read.skipped.append((key, f"not found in the images zip (row {row})"))
            else:
                chosen.append((members[key], label.strip()))
        read.frame = _decode_all(archive, chosen, read.corrupt)
    _log_read(Path(table_path).name, read)
    return read


def _require_images(listing: ArchiveListing, what: str) -> None:
    if listing.images:
        return
    if not listing.skipped:
        raise UserError(f"{what} holds no files. Zip the folder of class folders (e.g. cat/, dog/) and upload again.")
    examples = ", ".join(path for path, _ in listing.skipped[:3])
    raise UserError(f"{what} holds no image: {len(listing.skipped)} other file(s) such as {examples}. "
                    "Images must be .jpg, .png, .webp, .bmp, .gif or .tif files inside one folder per class.")


def _decode_all(archive: zipfile.ZipFile, chosen: list[tuple[Member, str]],
                corrupt: list[tuple[str, str]]) -> pd.DataFrame:
    rows = []
    for member, label in chosen:
        try:
            data = read_member(archive, member)
            width, height = load_rgb(data).size
        except ImageTooLarge as exc:
            raise UserError(f"'{member.path[:200]}' is refused: it has more pixels than the limit of "
                            f"{max_pixels():,} (a decompression bomb?) ({exc}). Resize it or remove it "
                            "from the zip, and upload again.") from exc
        except ImageProblem as exc:
            corrupt.append((member.path, str(exc)))
            continue
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            corrupt.append((member.path, f"damaged inside the zip ({str(exc)[:120]})"))
            continue
        rows.append((data, label, member.path, width, height, hashlib.sha256(data).hexdigest()))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"width": "int64", "height": "int64"})


def _member_index(members: list[Member]) -> dict[str, Member]:
    """Each member by its path, and also by its path below a single top folder (a zipped folder)."""
    index = {member.path: member for member in members}
    tops = {PurePosixPath(member.path).parts[0] for member in members}
    if len(tops) == 1 and all("/" in member.path for member in members):
        top = tops.pop() + "/"
        index.update({member.path.removeprefix(top): member for member in members})
    return index


def _normalise_path(value) -> str:
    text = "" if value is None else unicodedata.normalize("NFC", str(value).strip().replace("\\", "/"))
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/") if not text.startswith("/") else text


def _read_table(path: Path) -> pd.DataFrame:
    kind = TABLE_READERS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"'{path.name}' is not a table this app reads; use .csv, .tsv, .parquet or .jsonl.")
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False,
                                encoding="utf-8-sig")
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=kind == "jsonl", dtype=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"'{path.name}' could not be read as {kind} ({str(exc)[:200]}). "
                        "Save it again as UTF-8 CSV with a header row.") from exc
    frame.columns = [str(column) for column in frame.columns]
    return frame.fillna("").astype(str)


def _guess_column(table: pd.DataFrame, hints: tuple[str, ...], what: str) -> str:
    by_name = {column.strip().lower(): column for column in table.columns}
    for hint in hints:
        if hint in by_name:
            return by_name[hint]
    raise UserError(f"Which column holds the {what}? None of {', '.join(table.columns)} is named like one; "
                    f"pick the {what} column.")


def _log_read(what: str, read: ImageRead) -> None:
    log.info("%s: %d images, %d corrupt, %d skipped, %d ignored", what, len(read.frame), len(read.corrupt),
             len(read.skipped), read.ignored)
