"""The decoder under hostile input: the pixel budget read from headers, GIF frames, the box average that keeps
float memory to a band, errors that print whatever the bytes are."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

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


def test_only_the_first_gif_frame_is_decoded_as_pil_shows_it():
    """Two 30 x 30 frames: 900 pixels to decode, the first frame's."""
    payload = gif([noise(30, 30, seed=1), noise(30, 30, seed=2)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 30 x 30 image, 900 pixels to decode"):
        decode(payload, 899)
    np.testing.assert_array_equal(decode(payload, 900), np.asarray(Image.open(io.BytesIO(payload)).convert("RGB")))


ONE_PIXEL = b"\x2c" + struct.pack("<4H", 0, 0, 1, 1) + b"\x00\x02\x02\x44\x01\x00"  # a 1 x 1 frame of colour 0


def tiny_gif(body, first_colour=(255, 255, 255)):
    """A 1 x 1 GIF89a of two colours (`first_colour`, white) around `body` (blocks), closed by the trailer."""
    return b"GIF89a" + struct.pack("<2H", 1, 1) + b"\x80\x00\x00" + bytes(first_colour) + b"\xff" * 3 + body + b";"


def test_gif_frame_bomb_costs_its_first_frame_only():
    """100,000 frames of 1 x 1 pixel (1.5 MB): the first is decoded, the others are never read (the walk ends at
    the first frame's end)."""
    payload = tiny_gif(ONE_PIXEL * 100_000, first_colour=(10, 20, 30))
    assert len(payload) == 1_500_020
    np.testing.assert_array_equal(decode(payload, 1), [[[10, 20, 30]]])


def test_gif_comment_of_many_equal_tiny_blocks_is_skipped_in_runs():
    """Sub-blocks of one size are skipped _GIF_RUN at a time: 500,000 one-byte blocks take 123 steps."""
    payload = tiny_gif(b"\x21\xfe" + b"\x01c" * 500_000 + b"\x00" + ONE_PIXEL, first_colour=(10, 20, 30))
    np.testing.assert_array_equal(decode(payload, 1), [[[10, 20, 30]]])


def test_gif_frame_behind_a_long_comment_is_found():
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 50 x 40 image, 2000 pixels to decode"):
        decode(gif([noise(50, 40)], screen=(10, 10), comment_blocks=1000), 1999)


def test_gif_within_the_budget_decodes():
    assert decode(gif([noise(50, 40)], comment_blocks=1000), 2000).shape == (40, 50, 3)


def test_gif_of_too_many_blocks_before_its_first_frame_ends_is_refused():
    """One-byte and two-byte sub-blocks alternating: each is one step of the walk."""
    payload = tiny_gif(b"\x21\xfe" + b"\x01c\x02cc" * (preprocessing.GIF_MAX_BLOCKS // 2) + b"\x00" + ONE_PIXEL)
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: GIF of more than 512 blocks before its first "
                                                             "frame's end"):
        decode(payload)
    shorter = tiny_gif(b"\x21\xfe" + b"\x01c\x02cc" * (preprocessing.GIF_MAX_BLOCKS // 2 - 3) + b"\x00" + ONE_PIXEL)
    assert decode(shorter).shape == (1, 1, 3)


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


XMP_HEAD = b"\x21\xff\x0bXMP DataXMP"  # the application extension Photoshop writes XMP into, as raw bytes
XMP_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"  # the magic trailer, then the block terminator


def test_gif_with_a_long_xmp_packet_before_its_frame_decodes():
    """60 kB of XMP text read as sub-blocks of mixed sizes would take hundreds of steps: the extension is skipped
    in one, to the end of its magic trailer."""
    packet = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    packet += b"".join(b'<rdf:li stEvt:instanceID="xmp.iid:%08d" stEvt:action="saved"/>\n' % i for i in range(940))
    packet += b'</x:xmpmeta><?xpacket end="w"?>'
    assert len(packet) > 60_000
    payload = tiny_gif(XMP_HEAD + packet + XMP_TRAILER + ONE_PIXEL, first_colour=(10, 20, 30))
    assert np.asarray(Image.open(io.BytesIO(payload)).convert("RGB")).tolist() == [[[10, 20, 30]]]
    np.testing.assert_array_equal(decode(payload, 1), [[[10, 20, 30]]])


def test_xmp_extension_ended_early_is_walked_as_giflib_reads_it():
    """A zero byte inside the packet ends the extension for giflib: a frame behind it is the first one, sized by the
    budget check, even though a magic trailer and a 1 x 1 frame follow."""
    hidden = b"\x2c" + struct.pack("<4H", 0, 0, 100, 100) + b"\x00\x02\x02\x44\x01\x00"
    payload = tiny_gif(XMP_HEAD + b"\x03abc\x00" + hidden + XMP_TRAILER + ONE_PIXEL)
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.img: 100 x 100 image, 10000 pixels to decode"):
        decode(payload, 1000)
