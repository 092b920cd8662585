"""Small generated images for the hostile-input tests, among them bombs declaring far more pixels than they hold."""

import io
import struct
import zlib

import numpy as np
from PIL import Image

# The first bytes of a 105,724-byte lossy WebP: "RIFF", the size after these 8 bytes (LE), "WEBPVP8 ".
WEBP_HEAD = b"RIFF\xf4\x9c\x01\x00WEBPVP8 "


def encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def noise(width, height, seed=0):
    """An RGB image of random pixels, `width` x `height` as PIL counts."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_bomb(width, height):
    """A valid all-black 1-bit greyscale PNG of any size: 49 KB at 20000 x 20000, which decodes to 1.2 GB of RGB."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = bytes(1 + (width + 7) // 8) * height  # each row: filter type 0, then zero bits
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def gif(frames, screen=None, comment_blocks=0):
    """GIF bytes of the images `frames`; `screen` overrides the logical screen's (width, height) in the header, and
    `comment_blocks` one-byte data sub-blocks of a comment go before the first frame."""
    payload = bytearray(encode(frames[0].convert("P"), "GIF", save_all=len(frames) > 1,
                               append_images=[f.convert("P") for f in frames[1:]]))
    if screen is not None:
        payload[6:10] = struct.pack("<HH", *screen)
    if comment_blocks:
        flags = payload[10]
        start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
        payload[start:start] = b"\x21\xfe" + b"\x01c" * comment_blocks + b"\x00"
    return bytes(payload)


def top_down_bmp(image):
    """BMP bytes of `image` with its rows stored top first, which the header marks with a negative height."""
    payload = bytearray(encode(image, "BMP"))
    payload[22:26] = struct.pack("<i", -struct.unpack("<i", payload[22:26])[0])
    return bytes(payload)
