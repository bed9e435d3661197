"""Every format and colour mode becomes upright RGB the same way."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.tasks.image_classification.images import ImageProblem, load_rgb, thumbnail_png
from tests.backend.tasks.image_classification.conftest import image_bytes

RED = (220, 30, 30)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_formats_decode_to_rgb(fmt):
    image = load_rgb(image_bytes(RED, size=(12, 8), fmt=fmt))
    assert image.mode == "RGB" and image.size == (12, 8)
    assert np.abs(np.asarray(image)[4, 6].astype(int) - RED).max() <= 12  # lossy formats drift a little


def encode(image: Image.Image, fmt: str = "PNG", **args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **args)
    return buffer.getvalue()


def test_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), (0, 0, 230))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert tuple(np.asarray(load_rgb(data))[0, 0]) == RED


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "LA"])
def test_modes_convert_to_rgb(mode):
    image = load_rgb(image_bytes(RED, fmt="TIFF" if mode == "CMYK" else "PNG", mode=mode))
    assert image.mode == "RGB" and image.size == (16, 16)


def test_grey_stays_grey_and_sixteen_bit_is_scaled_not_clipped():
    grey = np.asarray(load_rgb(image_bytes((100, 100, 100), mode="L")))
    assert (grey == grey[..., :1]).all()
    sixteen = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert abs(int(np.asarray(load_rgb(encode(sixteen)))[0, 0, 0]) - 127) <= 1  # half of 65535 -> half of 255


def test_transparency_is_laid_over_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (200, 0, 0, 255))
    pixels = np.asarray(load_rgb(encode(rgba)))
    assert tuple(pixels[0, 0]) == (200, 0, 0) and tuple(pixels[3, 3]) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    pixels = np.asarray(load_rgb(encode(palette, transparency=0)))
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[1, 1]) == (200, 0, 0)


def test_exif_orientation_is_applied():
    # A 4 wide x 2 high image, red on its left half, stored with "rotate 90 clockwise to view" (6).
    stored = np.zeros((2, 4, 3), dtype=np.uint8)
    stored[:, :2] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored), "PNG", exif=exif.tobytes())
    upright = load_rgb(data)
    assert upright.size == (2, 4)
    pixels = np.asarray(upright)
    assert tuple(pixels[0, 1]) == RED and tuple(pixels[3, 0]) == (0, 0, 0)  # the left half is now on top


@pytest.mark.parametrize("data, why", [(b"", "0-byte"), (b"GIF89a-not-really", "Pillow can read"),
                                       (image_bytes(fmt="JPEG", size=(64, 64), noise_seed=1)[:300], "truncated")])
def test_broken_files_raise_image_problem(data, why):
    with pytest.raises(ImageProblem, match=why):
        load_rgb(data)


def test_thumbnails_are_small_pngs():
    thumb = Image.open(io.BytesIO(thumbnail_png(image_bytes(size=(200, 100)))))
    assert thumb.format == "PNG" and thumb.size == (64, 32)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "WEBP", "BMP"])
def test_damaged_files_give_an_image_or_image_problem_never_another_error(fmt):
    from backend.tasks.image_classification.images import ImageTooLarge

    original = bytearray(image_bytes(RED, size=(24, 16), fmt=fmt, noise_seed=2))
    rng = np.random.default_rng(0)
    for _ in range(150):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
            data[position] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            data = data[: int(rng.integers(1, len(data)))]
        try:
            image = load_rgb(bytes(data))
        except (ImageProblem, ImageTooLarge):  # skipped and listed (or refused); any other error fails here
            continue
        assert image.mode == "RGB" and min(image.size) > 0
