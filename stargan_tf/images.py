"""Image grids and atomic PNG files for samples and test results."""

import io

import numpy as np
from PIL import Image

from stargan_tf.files import write_atomic  # also images.write_atomic, as before


def to_uint8(images):
    """[-1, 1] floats -> [0, 255] uint8 (the official `denorm`, then rounding)."""
    images = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def grid(columns):
    """One row per image and one column per entry of `columns` (each (N, H, W, 3) in [-1, 1]): uint8 array."""
    row_strips = np.concatenate([to_uint8(c) for c in columns], axis=2)  # (N, H, W * len(columns), 3)
    return np.concatenate(list(row_strips), axis=0)


def save_png(path, array):
    """Write a uint8 (H, W, 3) array as PNG via a temporary file, so a crash never leaves half a file."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())

