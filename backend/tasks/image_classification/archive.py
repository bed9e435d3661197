"""Open an uploaded zip of images as hostile input: check every member before reading any.

The whole archive is refused (UserError, nothing read, nothing stored) when a member could write
outside a folder (absolute path, `..`, a symbolic link), when it holds another archive, or when it
is bigger than the limits once unpacked (files, bytes, compression ratio: a zip bomb). The limits
follow backend/export.py's model-import limits in shape. macOS's `__MACOSX/` resource forks,
`.DS_Store` and other hidden files are ignored; files that are not images are listed as skipped.

File names: a zip that does not flag its names as UTF-8 is read by Python as cp437. Most tools
write UTF-8 without the flag and Windows tools write the local code page (GBK, Shift-JIS, ...), so
the raw bytes are decoded as UTF-8 when they are valid UTF-8, else by charset detection over all
such names at once (one name alone is too short to tell), with a warning. Names are put in
Unicode NFC form, so a class typed on macOS and on Windows is one label.
"""

from __future__ import annotations

import logging
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from backend.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
MAC_METADATA = "__MACOSX"
UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
ENCRYPTED_FLAG = 0x1  # general purpose bit 0: the member is encrypted
DEFAULT_MAX_UNPACKED_MB = 4096  # CIFAR-10's 50,000 JPEGs unpack to about 45 MB
DEFAULT_MAX_FILES = 500_000
DEFAULT_MAX_IMAGE_MB = 64
# A photo does not compress: JPEG/PNG/WebP members have ratios near 1. Only a member this big is
# checked, since a tiny BMP of one colour legitimately compresses a thousandfold.
DEFAULT_MAX_RATIO = 200
RATIO_CHECK_BYTES = 10 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """How big an image archive may get once unpacked."""

    max_bytes: int = DEFAULT_MAX_UNPACKED_MB * 1024 * 1024
    max_files: int = DEFAULT_MAX_FILES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_MB * 1024 * 1024
    max_ratio: float = DEFAULT_MAX_RATIO


@dataclass(frozen=True)
class Member:
    """One image file of the archive: its zip entry and its path as the user named it."""

    info: zipfile.ZipInfo
    path: str  # decoded, '/'-separated, as listed to the user


@dataclass
class ArchiveListing:
    """What an archive holds: image members, and what was ignored or skipped (with why)."""

    images: list[Member] = field(default_factory=list)
    ignored: int = 0  # __MACOSX/, .DS_Store, hidden files: never shown as problems
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)


def open_archive(path, what: str = "The upload") -> zipfile.ZipFile:
    """The file as a ZipFile; UserError when it is not a readable zip."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{what} is not a readable .zip file ({exc}). Zip the class folders again "
                        "(for example: right-click the folder > Compress) and upload that .zip.") from exc


def list_images(archive: zipfile.ZipFile, limits: ArchiveLimits) -> ArchiveListing:
    """Check every member and sort them into images, ignored and skipped; UserError for a hostile archive."""
    members = archive.infolist()
    for info in members:
        _refuse_unsafe(info)
    names = _decode_names(members)
    listing = ArchiveListing(warnings=names.warnings)
    files = [info for info in members if not info.is_dir()]
    _check_size(files, limits)
    for info in files:
        path = names.paths[info.filename]
        parts = PurePosixPath(path).parts
        if parts[0] == MAC_METADATA or any(part.startswith(".") for part in parts) \
                or parts[-1].lower() in IGNORED_NAMES:
            listing.ignored += 1
            continue
        suffix = PurePosixPath(path).suffix.lower()
        if suffix in ARCHIVE_SUFFIXES:
            raise UserError(f"The zip holds another archive ('{path[:200]}'); archives inside archives are "
                            "not read. Unpack it and zip the class folders themselves.")
        if suffix not in IMAGE_SUFFIXES:
            listing.skipped.append((path, "not an image file (" + (suffix or "no extension") + ")"))
            continue
        if info.file_size > limits.max_image_bytes:
            listing.skipped.append((path, f"larger than {limits.max_image_bytes >> 20} MB"))
            continue
        listing.images.append(Member(info=info, path=path))
    return listing


def read_member(archive: zipfile.ZipFile, member: Member) -> bytes:
    """The member's bytes; never more than its declared size (zipfile stops there and checks the CRC)."""
    with archive.open(member.info) as handle:
        return handle.read(member.info.file_size + 1)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _refuse_unsafe(info: zipfile.ZipInfo) -> None:
    name = info.filename.replace("\\", "/")
    reason = None
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        reason = "an absolute path"
    elif ".." in name.split("/"):
        reason = "a '..' path that points outside the archive"
    elif "\x00" in name:
        reason = "a NUL byte in its name"
    elif _is_symlink(info):
        reason = "a symbolic link"
    elif info.flag_bits & ENCRYPTED_FLAG:
        reason = "password-protected"
    if reason:
        raise UserError(f"The zip is refused: member '{info.filename[:200]}' is {reason}. Zip the class folders "
                        "themselves (plain files and folders, no password) and upload again.")


def _check_size(files: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(files) > limits.max_files:
        raise UserError(f"The zip is refused: it holds {len(files):,} files; at most {limits.max_files:,} "
                        "are accepted. Upload a smaller sample of the images.")
    total = sum(info.file_size for info in files)
    if total > limits.max_bytes:
        raise UserError(f"The zip is refused: it unpacks to {total / 1e6:,.1f} MB; the limit is "
                        f"{limits.max_bytes / 1e6:,.1f} MB. Upload fewer or smaller images.")
    for info in files:
        if info.file_size >= RATIO_CHECK_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UserError(f"The zip is refused: member '{info.filename[:200]}' unpacks from "
                            f"{info.compress_size:,} to {info.file_size:,} bytes (a zip bomb?). "
                            "Images barely compress; zip the image files themselves.")


@dataclass(frozen=True)
class _Names:
    paths: dict[str, str]  # ZipInfo.filename -> decoded path
    warnings: list[str]


def _decode_names(members: list[zipfile.ZipInfo]) -> _Names:
    paths, legacy = {}, {}
    for info in members:
        if info.flag_bits & UTF8_FLAG or info.filename.isascii():
            paths[info.filename] = info.filename
            continue
        raw = info.filename.encode("cp437")  # undo zipfile's cp437 decoding: the bytes as stored
        try:
            paths[info.filename] = raw.decode("utf-8")
        except UnicodeDecodeError:
            legacy[info.filename] = raw
    warnings = []
    if legacy:
        encoding = _guess_encoding(b"\n".join(legacy.values()))
        for name, raw in legacy.items():
            paths[name] = raw.decode(encoding, errors="replace")
        warnings.append(f"{len(legacy)} file name(s) in the zip are not UTF-8; they were read as {encoding}. "
                        "If class names look wrong, zip the folders again with a tool that writes UTF-8 "
                        "names (7-Zip, or macOS/Linux zip).")
    for name, path in paths.items():
        # NFC: macOS writes "é" as e + combining accent; the same class name must be one label.
        paths[name] = unicodedata.normalize("NFC", path.replace("\\", "/").strip("/"))
    return _Names(paths=paths, warnings=warnings)


def _guess_encoding(raw: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    return best.encoding if best is not None else "cp437"
