"""Decode image bytes with Pillow into what every model sees: upright RGB.

One function, `load_rgb`, is used at ingest (to check a file and measure it), in the DataLoader's
workers and at prediction, so an image is turned upright and into RGB the same way everywhere:
EXIF orientation applied, the first frame of a GIF/TIFF, grayscale / palette / CMYK / 16-bit
converted, transparency laid over white (a transparent pixel's hidden colour is often black noise).

Pillow refuses images of more than 2 x Image.MAX_IMAGE_PIXELS with DecompressionBombError and
warns above MAX_IMAGE_PIXELS; both are refused here before a pixel is decoded.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 64


class ImageProblem(Exception):
    """This file is not a usable image (empty, truncated, not an image); it is skipped and listed."""


class ImageTooLarge(Exception):
    """More pixels than Pillow's MAX_IMAGE_PIXELS: a decompression bomb, refused."""


def max_pixels() -> int:
    """The pixel limit in force (Pillow's MAX_IMAGE_PIXELS, which the app may set)."""
    return int(Image.MAX_IMAGE_PIXELS or 0)


def load_rgb(data: bytes) -> Image.Image:
    """The image in `data` as an upright RGB Pillow image; ImageProblem or ImageTooLarge otherwise."""
    if not data:
        raise ImageProblem("an empty (0-byte) file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()  # decodes the first frame now: a truncated file fails here, not in training
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageProblem("not an image Pillow can read") from exc
    except Exception as exc:  # a damaged file trips many kinds of error inside Pillow's decoders
        raise ImageProblem(f"unreadable or truncated ({str(exc)[:120]})") from exc
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF: the pixels are fine, keep them as stored
        log.warning("ignoring unreadable EXIF orientation", exc_info=True)
    try:
        return _to_rgb(image)
    except Exception as exc:
        raise ImageProblem(f"could not be converted to RGB ({str(exc)[:120]})") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float grayscale: Pillow's convert would clip to 0..255; scale the range instead.
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if pixels.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def resize_square(image: Image.Image, size: int) -> Image.Image:
    """`image` resized to size x size (stretched, as Hugging Face's ViT processor does)."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


def to_uint8_chw(image: Image.Image) -> np.ndarray:
    """An RGB image as a (3, H, W) uint8 array, the layout torch models take."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def thumbnail_png(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small PNG of the image (longest side `size`), for the report's grid."""
    image = load_rgb(data)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
