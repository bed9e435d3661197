"""Hostile and broken uploads: a clear message, and nothing stored; corrupt files skipped and listed."""

from __future__ import annotations

import stat
import zipfile

import pytest
from PIL import Image

from backend.errors import UserError
from backend.tasks.image_classification.archive import ArchiveLimits
from backend.tasks.image_classification.prepare import BlockingErrors, ingest_image_zip
from backend.tasks.image_classification.reading import read_image_zip
from tests.backend.tasks.image_classification.conftest import colour_entries, image_bytes, write_zip


class RawNameInfo(zipfile.ZipInfo):
    """A zip entry whose name is written as these raw bytes, without the UTF-8 flag (as old Windows tools do)."""

    def __init__(self, raw: bytes):
        super().__init__(raw.decode("cp437"))
        self.raw = raw

    def _encodeFilenameFlags(self):
        return self.raw, self.flag_bits & ~0x800


def refused(tmp_path, zip_path, match: str, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Ingesting the zip raises a UserError matching `match` and leaves the datasets folder empty."""
    datasets = tmp_path / "datasets"
    with pytest.raises(UserError, match=match):
        ingest_image_zip(zip_path, datasets, limits=limits)
    assert not datasets.exists() or not any(datasets.iterdir())


def zip_with(tmp_path, info: zipfile.ZipInfo, data: bytes = b"x") -> zipfile.ZipFile:
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, image in colour_entries(2).items():
            archive.writestr(name, image)
        archive.writestr(info, data)
    return path


@pytest.mark.parametrize("name, reason", [("../evil/x.png", "'..' path"), ("red/../../x.png", "'..' path"),
                                          ("/etc/x.png", "absolute path"), ("C:/x/y.png", "absolute path")])
def test_zip_slip_paths_refuse_the_whole_zip(tmp_path, name, reason):
    refused(tmp_path, zip_with(tmp_path, zipfile.ZipInfo(name), image_bytes()), reason)


def test_a_symlink_refuses_the_whole_zip(tmp_path):
    link = zipfile.ZipInfo("red/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    refused(tmp_path, zip_with(tmp_path, link, b"/etc/passwd"), "symbolic link")


def test_a_password_protected_member_refuses_the_zip(tmp_path):
    path = zip_with(tmp_path, zipfile.ZipInfo("red/locked.png"), image_bytes())
    data = bytearray(path.read_bytes())
    # zipfile cannot write encrypted members: set the encryption bit in the central directory entry.
    entry = data.index(b"PK\x01\x02")  # the first central directory entry
    while data[entry + 46:entry + 46 + 14] != b"red/locked.png":
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 8] |= 0x1
    path.write_bytes(bytes(data))
    refused(tmp_path, path, "password-protected")


def test_too_many_files_or_bytes_refuse_the_zip(tmp_path, colour_zip):
    refused(tmp_path, colour_zip, "holds 18 files; at most 10", ArchiveLimits(max_files=10))
    refused(tmp_path, colour_zip, "unpacks to .* MB; the limit", ArchiveLimits(max_bytes=1000))


def test_a_highly_compressed_member_is_a_zip_bomb(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, image in colour_entries(2).items():
            archive.writestr(name, image)
        archive.writestr("red/huge.bmp", bytes(11 << 20))  # 11 MB of zeros deflate to ~11 KB
    refused(tmp_path, path, "zip bomb")


def test_a_decompression_bomb_image_is_refused(tmp_path, monkeypatch, colour_zip):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 16x16 images now count as bombs
    refused(tmp_path, colour_zip, r"more pixels than the limit of 100 \(a decompression bomb")


def test_not_a_zip_empty_zip_text_files_and_nested_zips(tmp_path):
    (tmp_path / "fake.zip").write_bytes(b"hello, not a zip")
    refused(tmp_path, tmp_path / "fake.zip", "not a readable .zip")
    refused(tmp_path, write_zip(tmp_path / "empty.zip", {}), "holds no files")
    refused(tmp_path, write_zip(tmp_path / "mac.zip", {"__MACOSX/._a.png": b"x", ".DS_Store": b"x"}), "holds no files")
    text = write_zip(tmp_path / "text.zip", {"a/readme.txt": b"hello", "b/notes.md": b"# notes"})
    refused(tmp_path, text, r"holds no image: 2 other file\(s\) such as a/readme.txt")
    nested = write_zip(tmp_path / "nested.zip", {**colour_entries(2), "red/more.zip": b"PK\x05\x06" + bytes(18)})
    refused(tmp_path, nested, "another archive")


def test_empty_and_truncated_images_are_listed_and_skipped(tmp_path):
    jpeg = image_bytes((10, 200, 10), size=(64, 64), fmt="JPEG", noise_seed=3)
    entries = {**colour_entries(3), "red/empty.jpg": b"", "red/cut.jpg": jpeg[: len(jpeg) // 2],
               "red/not_really.png": b"this is text", "blue/notes.txt": b"hello"}
    read = read_image_zip(write_zip(tmp_path / "broken.zip", entries))
    corrupt = dict(read.corrupt)
    assert set(corrupt) == {"red/empty.jpg", "red/cut.jpg", "red/not_really.png"}
    assert "0-byte" in corrupt["red/empty.jpg"] and "truncated" in corrupt["red/cut.jpg"]
    assert read.skipped == [("blue/notes.txt", "not an image file (.txt)")]
    assert len(read.frame) == 9


def test_a_class_left_with_one_image_blocks_and_reports(tmp_path):
    entries = {**colour_entries(3), "purple/ok.png": image_bytes((120, 0, 120)), "purple/bad.png": b"\x89PNG broken"}
    datasets = tmp_path / "datasets"
    with pytest.raises(BlockingErrors, match="fewer than 2 usable images: purple") as caught:
        ingest_image_zip(write_zip(tmp_path / "z.zip", entries), datasets)
    assert caught.value.report.corrupt_count == 1 and caught.value.report.train_per_class["purple"] == 1
    assert not datasets.exists()


def test_a_zip_whose_images_are_all_broken_blocks_with_no_image_found(tmp_path):
    entries = {"cats/a.jpg": b"", "cats/b.jpg": b"\xff\xd8", "dogs/c.png": b"\x89PNG"}
    with pytest.raises(BlockingErrors, match="No image was found") as caught:
        ingest_image_zip(write_zip(tmp_path / "broken.zip", entries), tmp_path / "datasets")
    assert caught.value.report.corrupt_count == 3
    assert not (tmp_path / "datasets").exists()


def test_macos_metadata_and_hidden_files_are_ignored(tmp_path):
    entries = {**colour_entries(2), "__MACOSX/red/._000.png": b"\x00\x05\x16\x07", ".DS_Store": b"\x00",
               "red/.DS_Store": b"\x00", "green/._001.png": b"x", "Thumbs.db": b"x"}
    read = read_image_zip(write_zip(tmp_path / "mac.zip", entries))
    assert read.ignored == 5 and read.skipped == [] and read.corrupt == [] and len(read.frame) == 6


def test_non_utf8_names_are_decoded(tmp_path):
    path = tmp_path / "legacy.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(RawNameInfo("café/1.png".encode("utf-8")), image_bytes())  # UTF-8 without the flag
        archive.writestr(RawNameInfo("cafe\u0301/2.png".encode("utf-8")), image_bytes(noise_seed=1))  # NFD, as macOS
        for i in range(2):  # a Chinese class name written in GBK by an old Windows zip tool
            archive.writestr(RawNameInfo(f"猫咪图片/{i}.png".encode("gbk")), image_bytes((0, 0, 200), noise_seed=i))
            archive.writestr(RawNameInfo(f"小狗图片/{i}.png".encode("gbk")), image_bytes((0, 200, 0), noise_seed=i))
    read = read_image_zip(path)
    assert sorted(read.frame["label"].unique()) == sorted(["café", "猫咪图片", "小狗图片"])
    assert len(read.warnings) == 1 and "not UTF-8" in read.warnings[0]
