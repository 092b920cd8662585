"""Image grids and atomic PNG files for samples and test results, with a header row naming each column."""

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stargan_tf.files import write_atomic  # also images.write_atomic, as before


def to_uint8(images):
    """[-1, 1] floats -> [0, 255] uint8 (the official `denorm`, then rounding)."""
    images = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def grid(columns):
    """One row per image and one column per entry of `columns` (each (N, H, W, 3) in [-1, 1]): uint8 array."""
    row_strips = np.concatenate([to_uint8(c) for c in columns], axis=2)  # (N, H, W * len(columns), 3)
    return np.concatenate(list(row_strips), axis=0)


MIN_SHOWN_COLUMN = 96  # the automatic view scale enlarges narrower columns to at least this many pixels


def view_scale_for(column_width, view_scale=0):
    """The whole factor an output is enlarged by for viewing: `view_scale`, or for 0 (automatic) the smallest that
    makes a column at least MIN_SHOWN_COLUMN pixels wide (32 -> 3, 64 -> 2, 128 -> 1)."""
    if view_scale:
        return int(view_scale)
    return max(1, math.ceil(MIN_SHOWN_COLUMN / column_width))


def _lines(draw, font, text, width):
    """`text` broken at spaces, underscores or anywhere, into lines no wider than `width` pixels."""
    lines, current = [], ""
    for char in text:
        if current and draw.textlength(current + char, font=font) > width:
            cut = max(current.rfind(" "), current.rfind("_"))
            if cut > 0:
                lines.append(current[: cut + 1].rstrip())
                current = current[cut + 1 :]
            else:
                lines.append(current)
                current = ""
        current += char
    return lines + [current.strip()]


def labelled(array, names, view_scale=1):
    """`array` (uint8, a grid of len(names) equal columns) enlarged `view_scale` times, each pixel a square (nearest
    neighbour), under a white header row naming each column in black: what sample grids and --grid / --strip
    outputs are saved as. The grid's own pixels are kept, only repeated."""
    big = np.repeat(np.repeat(np.asarray(array, np.uint8), view_scale, axis=0), view_scale, axis=1)
    width = big.shape[1] // len(names)
    font = ImageFont.load_default(size=max(8, min(14, width // 7)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_lines(probe, font, name, width - 4) for name in names]
    line_height = font.size + 3
    header = Image.new("RGB", (big.shape[1], line_height * max(len(w) for w in wrapped) + 6), "white")
    draw = ImageDraw.Draw(header)
    for column, lines in enumerate(wrapped):
        for row, line in enumerate(lines):
            left = column * width + (width - draw.textlength(line, font=font)) / 2
            draw.text((left, 3 + row * line_height), line, fill="black", font=font)
    return np.concatenate([np.asarray(header), big], axis=0)


def png_bytes(array):
    """A uint8 (H, W, 3) array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path, array):
    """Write a uint8 (H, W, 3) array as PNG via a temporary file, so a crash never leaves half a file."""
    return write_atomic(path, png_bytes(array))

