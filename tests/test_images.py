"""Saved grids: the header row naming each column, and the view scale that enlarges small outputs."""

import numpy as np
import pytest

from stargan_tf import images


@pytest.mark.parametrize("width,asked,expected", [(32, 0, 3), (64, 0, 2), (96, 0, 1), (128, 0, 1), (32, 1, 1),
                                                  (128, 2, 2)])
def test_view_scale_is_asked_or_the_smallest_that_makes_columns_96_wide(width, asked, expected):
    assert images.view_scale_for(width, asked) == expected


def test_labelled_grid_keeps_every_pixel_enlarged_under_a_header_naming_each_column():
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 256, (2 * 32, 3 * 32, 3), dtype=np.uint8)  # 2 rows, 3 columns of 32 px
    out = images.labelled(grid, ["input", "Blond_Hair", "Male flipped"], 3)
    header_height = out.shape[0] - 2 * 96
    assert out.shape[1:] == (3 * 96, 3) and header_height > 0
    np.testing.assert_array_equal(out[header_height:], np.repeat(np.repeat(grid, 3, axis=0), 3, axis=1))
    header = out[:header_height]
    for column in range(3):  # white, with dark text inside each column's own band
        band = header[:, column * 96 : (column + 1) * 96]
        assert (band[0] == 255).all() and band.min() < 128, column


def test_a_long_name_wraps_inside_its_column():
    out = images.labelled(np.zeros((32, 64, 3), np.uint8), ["input", "Heavy_Makeup flipped"], 1)
    one_line = images.labelled(np.zeros((32, 64, 3), np.uint8), ["input", "Male"], 1)
    assert out.shape[0] > one_line.shape[0]  # more lines, a taller header; nothing drawn past the columns
    assert out.shape[1] == 64
