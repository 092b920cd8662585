"""Reading the saved grids (samples, test results, --grid and --strip): a header row above the enlarged grid."""

import numpy as np
from PIL import Image


def split_header(path, rows, columns, side):
    """(header, grid) of the PNG at `path`, a grid of `rows` x `columns` squares of `side` pixels (the model's size
    times the view scale) under a header row; asserts those sizes and a white header with dark text in it."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    height, width = pixels.shape[:2]
    assert width == columns * side, (width, columns, side)
    header_height = height - rows * side
    assert header_height > 0, (height, rows, side)
    header, grid = pixels[:header_height], pixels[header_height:]
    assert (header[0] == 255).all() and header.min() < 128  # white, with text
    return header, grid
