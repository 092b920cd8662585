"""Test photos and their bytes: png_bytes, photo (random pixels), jpeg_with_exif_after (Exif past padding)."""

import io

import numpy as np
from PIL import Image

from tests.helpers.hostile_images import encode, noise


def png_bytes(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def photo(mode="RGB", size=(50, 40), seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def jpeg_with_exif_after(padding, orientation=6):
    """A JPEG whose APP1 Exif segment (orientation 6) follows `padding` bytes of COM segments after the SOI."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = encode(noise(6, 4), "JPEG", exif=exif.tobytes())
    comments = b""
    while len(comments) < padding:
        size = min(65533, padding - len(comments) - 4)
        comments += b"\xff\xfe" + (size + 2).to_bytes(2, "big") + b"c" * size
    return payload[:2] + comments + payload[2:]
