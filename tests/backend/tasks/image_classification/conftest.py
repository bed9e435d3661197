"""Tiny image fixtures: images drawn in memory, zips written to tmp_path, a CIFAR-10 cut in memory."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def image_bytes(colour=(200, 30, 30), size=(16, 16), fmt="PNG", mode="RGB", noise_seed: int | None = None,
                **save_args) -> bytes:
    """An encoded image of one colour (plus noise when noise_seed is given)."""
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = colour
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-40, 41, pixels.shape)
        pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def write_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    """A zip at `path` holding `entries` (name -> bytes)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def colour_entries(per_class: int = 4, prefix: str = "", size=(16, 16), seed: int = 0) -> dict[str, bytes]:
    """`per_class` noisy PNGs of each colour class under <prefix><class>/."""
    entries = {}
    for c, (label, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            entries[f"{prefix}{label}/{i:03d}.png"] = image_bytes(colour, size, noise_seed=seed * 10_000 + c * 1000 + i)
    return entries


@pytest.fixture
def colour_zip(tmp_path) -> Path:
    """A zip of 3 colour classes, 6 images each, without a top folder."""
    return write_zip(tmp_path / "colours.zip", colour_entries(6))


@pytest.fixture
def cifar_entries(shared_data) -> dict[str, bytes]:
    """20 JPEGs of each CIFAR-10 class read from sample_1k.zip in memory (names as in the zip)."""
    entries: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    with zipfile.ZipFile(shared_data / "cifar10" / "sample_1k.zip") as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if info.is_dir() or len(parts) != 3 or counts.get(parts[1], 0) >= 20:
                continue
            counts[parts[1]] = counts.get(parts[1], 0) + 1
            entries[info.filename] = archive.read(info)
    return entries
