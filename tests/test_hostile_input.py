"""The decoder under hostile input: the pixel budget read from headers, GIF frames, the box average that keeps
float memory to a band, errors that print whatever the bytes are."""

import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import preprocessing
from tests.helpers.hostile_images import WEBP_HEAD, gif, noise, png_bomb


def decode(payload, max_pixels=preprocessing.MAX_PIXELS):
    return preprocessing.decode_image(tf.constant(payload), "x.img", max_pixels=max_pixels)


def test_png_bomb_is_refused_with_its_size_and_the_budget():
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 20000 x 20000 image, 400000000 pixels to "
                                                             "decode, exceeds the budget of 50000000 pixels"):
        decode(png_bomb(20000, 20000))


def test_gif_is_sized_by_its_frame_not_its_logical_screen():
    """TF decodes a GIF at its largest frame's size, whatever the 10 x 10 screen in the header says."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 50 x 40 image, 2000 pixels to decode"):
        decode(gif([noise(50, 40)], screen=(10, 10)), 1999)


def test_gif_frames_count_together():
    """giflib holds every frame, so two 30 x 30 frames are 1800 pixels."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 30 x 30 image, 1800 pixels to decode"):
        decode(gif([noise(30, 30, seed=1), noise(30, 30, seed=2)]), 1799)


def test_gif_frame_behind_a_long_comment_is_found():
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 50 x 40 image, 2000 pixels to decode"):
        decode(gif([noise(50, 40)], screen=(10, 10), comment_blocks=1000), 1999)


def test_gif_within_the_budget_decodes():
    assert decode(gif([noise(50, 40)], comment_blocks=1000), 2000).shape == (40, 50, 3)


def test_gif_of_too_many_blocks_is_refused():
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: GIF of more than 65536 blocks"):
        decode(gif([noise(5, 5)], comment_blocks=preprocessing.GIF_MAX_BLOCKS))


def test_unknown_bytes_are_shown_in_hex():
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)first bytes \\(hex\\):.*52 49 46 46 f4 9c 01 00"):
        decode(WEBP_HEAD + bytes(100))


def float_resize(image, crop_size, image_size):
    """The preprocessing before the box average: the whole image as float32, centre crop, antialiased resize."""
    image = preprocessing.center_crop(tf.cast(image, tf.float32), crop_size)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0).numpy()


@pytest.mark.parametrize("crop_size,image_size", [(178, 128), (178, 64), (178, 32), (None, 64), (None, 45)])
def test_preprocess_below_the_box_average_is_bit_identical(crop_size, image_size):
    """Crops up to BOX_AVERAGE_ABOVE: uint8 crop then float32 gives exactly the old float32 result."""
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (218, 178, 3), dtype=np.uint8))
    np.testing.assert_array_equal(preprocessing.preprocess(image, crop_size, image_size).numpy(),
                                  float_resize(image, crop_size, image_size))


def test_large_crop_is_box_averaged_before_the_resize():
    """A 1030 x 1030 crop at 32: k = 16, the means of the 16 x 16 blocks of its centred 1024 x 1024, then the
    resize."""
    pixels = np.random.default_rng(1).integers(0, 256, (1030, 1068, 3), dtype=np.uint8)
    blocks = pixels[3:1027, 19 + 3:19 + 1027].astype(np.float64).reshape(64, 16, 64, 16, 3).mean(axis=(1, 3))
    expected = float_resize(tf.constant(blocks, tf.float32), None, 32)
    np.testing.assert_allclose(preprocessing.preprocess(tf.constant(pixels), None, 32).numpy(), expected, atol=1e-6)
