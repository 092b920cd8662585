"""Image bytes to model input, shared by training (stargan_tf.data) and serving (stargan_tf.serving), so that the
two never skew: the pixel budget read from the header, decoding, the centre crop, the resize and the scaling.
"""

import tensorflow as tf

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP: the branches of _header_size
DECODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # their file names (class folders, translate's --input)

# Default pixel budget of an image to decode (width x height from its header): a 48 MP phone photo (8000 x 6000)
# fits and takes 150 MB as uint8, while a 1 MB PNG may declare 20000 x 20000 pixels (1.2 GB as uint8).
MAX_PIXELS = 50_000_000
# Blocks walked to find a GIF's frames: 16 MB of GIF as encoders write it (255-byte data sub-blocks), 1-2 s of
# CPU for a GIF made of tiny blocks; a GIF needing more is refused.
GIF_MAX_BLOCKS = 1 << 16


def _hex(contents, count):
    """The first `count` bytes as hex pairs ("52 49 46 46"): printable in an error whatever the bytes are."""
    digits = tf.constant([f"{i:02x}" for i in range(256)])
    raw = tf.io.decode_raw(tf.strings.substr(contents, 0, count), tf.uint8)
    return tf.strings.reduce_join(tf.gather(digits, tf.cast(raw, tf.int32)), separator=" ")


def _uint(data, start, count, big_endian=False):
    """The unsigned integer in bytes data[start:start + count] of an int64 byte vector."""
    places = range(count - 1, -1, -1) if big_endian else range(count)
    return tf.add_n([data[start + i] * (1 << (8 * p)) for i, p in enumerate(places)])


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _gif_size(contents):
    """(height, width, pixels, complete) of a GIF from its block structure, no pixel decoded.

    TF's decoder sizes its output by the largest frame, not the logical screen, and giflib holds every frame, so
    the extent is the largest of the screen and the frames, pixels the larger of that area and all frames together.
    `complete` is False when the walk needs more than GIF_MAX_BLOCKS blocks. A tf.function: eager calls run a graph.
    """
    data = tf.io.decode_raw(tf.strings.join([contents, b"\0"]), tf.uint8)  # uint8: a copy the file's size
    end = tf.size(data, out_type=tf.int64) - 1

    def byte(i):
        return tf.cast(tf.gather(data, tf.minimum(tf.cast(i, tf.int64), end)), tf.int64)

    def word(i):
        return byte(i) + 256 * byte(i + 1)

    def colour_table(flags):  # 3 * 2^(n + 1) bytes when the flags' top bit says one follows
        return tf.where(flags >= 128, 6 * tf.bitwise.left_shift(tf.constant(1, tf.int64), flags % 8), 0)

    def step(pos, in_sub_blocks, width, height, total):
        b = byte(pos)
        image = ~in_sub_blocks & tf.equal(b, 0x2C)  # image descriptor: left, top, width, height, flags
        extension = ~in_sub_blocks & tf.equal(b, 0x21)  # label byte, then sub-blocks
        frame_w, frame_h = word(pos + 5), word(pos + 7)
        after = tf.where(in_sub_blocks, pos + 1 + b, tf.where(image, pos + 11 + colour_table(byte(pos + 9)),
                                                              tf.where(extension, pos + 2, end)))
        return (after, tf.where(in_sub_blocks, b > 0, image | extension),
                tf.where(image, tf.maximum(width, word(pos + 1) + frame_w), width),
                tf.where(image, tf.maximum(height, word(pos + 3) + frame_h), height),
                tf.where(image, total + frame_w * frame_h, total))

    start = [13 + colour_table(byte(10)), tf.constant(False), word(6), word(8), tf.constant(0, tf.int64)]
    pos, _, width, height, total = tf.while_loop(lambda pos, *_: pos < end, step, start,
                                                 maximum_iterations=GIF_MAX_BLOCKS)
    return height, width, tf.maximum(width * height, total), pos >= end


def _header_size(contents, kind):
    """(height, width, pixels, complete) int64/bool that decoding `contents` of format `kind` (an index into
    _MAGIC) yields, read from the header alone; zeros for other bytes or a header cut short (the decoder rejects
    those). A BMP's negative height (rows stored top first) counts as positive."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, 26), b"\0" * 26]), 0, 26)
    data = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def size(height, width):
        return height, width, height * width, tf.constant(True)

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(contents), tf.int64)
        return size(shape[0], shape[1])

    def bmp():
        signed = [tf.abs(tf.where(v >= 1 << 31, v - (1 << 32), v)) for v in (_uint(data, 22, 4), _uint(data, 18, 4))]
        return size(*signed)

    zero = tf.constant(0, tf.int64)
    return tf.switch_case(kind, [jpeg, lambda: size(_uint(data, 20, 4, True), _uint(data, 16, 4, True)),
                                 lambda: _gif_size(contents), bmp, lambda: size(zero, zero)])


def decode_image(contents, name, problem="not a JPEG, PNG, GIF or BMP image:", max_pixels=MAX_PIXELS):
    """Decode JPEG/PNG/GIF/BMP bytes of any mode (grey, RGBA, CMYK, ...) to uint8 RGB, after checking the size its
    header declares against `max_pixels`, so a small file declaring a huge image is refused before any decoding.

    Failures are InvalidArgumentErrors: other bytes say `problem`, `name` (a path, say; None leaves it out) and the
    first bytes in hex; an image over the budget says `name`, its size and the budget.
    """
    matches = [tf.equal(tf.strings.substr(contents, 0, len(m)), m) for m in _MAGIC]
    kind = tf.argmax(tf.cast(tf.stack([*matches, tf.constant(True)]), tf.int32), output_type=tf.int32)
    height, width, pixels, complete = _header_size(contents, kind)
    budget = tf.cast(max_pixels, tf.int64)
    prefix = [] if name is None else [name, ": "]
    over = tf.strings.join([*prefix, tf.strings.as_string(width), " x ", tf.strings.as_string(height),
                            " image, ", tf.strings.as_string(pixels), " pixels to decode, exceeds the budget of ",
                            tf.strings.as_string(budget), " pixels"])
    checks = [tf.debugging.Assert(kind < len(_MAGIC), [problem, *([] if name is None else [name]),
                                                       "first bytes (hex):", _hex(contents, 8)]),
              tf.debugging.Assert(pixels <= budget, [over]),
              tf.debugging.Assert(complete, [tf.strings.join([*prefix, f"GIF of more than {GIF_MAX_BLOCKS} blocks "
                                                                       "(frames, extensions, data sub-blocks)"])])]
    with tf.control_dependencies(checks):
        contents = tf.identity(contents)
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def center_crop(image, crop_size=None):
    """torchvision's CenterCrop offsets (round((h - c) / 2)); an image smaller than the crop keeps its
    largest centred square instead of being padded with black. `crop_size=None`: the largest centred square."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    size = tf.minimum(h, w) if crop_size is None else tf.minimum(tf.minimum(h, w), crop_size)
    top = tf.cast(tf.round(tf.cast(h - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(w - size, tf.float32) / 2.0), tf.int32)
    return image[top : top + size, left : left + size]


BOX_AVERAGE_ABOVE = 1024  # crops up to this side (every training set's images) are only cast: unchanged maths


def _box_average(square, image_size):
    """float32 of a square; one wider than BOX_AVERAGE_ABOVE is first averaged over k x k blocks (k = side //
    (2 * image_size), when 2 or more), one band of k rows at a time, so a huge photo never has a full-size float
    copy (a 48 MP photo would take 400 MB as float32)."""
    side = tf.shape(square)[0]
    k = side // (2 * image_size)

    def average():
        n = side // k
        start = (side - n * k) // 2  # the n * k pixels kept are centred

        def band(i):
            rows = tf.cast(square[start + i * k : start + (i + 1) * k, start : start + n * k], tf.float32)
            return tf.reduce_mean(tf.reshape(rows, [k, n, k, -1]), axis=[0, 2])

        return tf.map_fn(band, tf.range(n), fn_output_signature=tf.TensorSpec([None, None], tf.float32),
                         parallel_iterations=2)

    image = tf.cond((k >= 2) & (side > BOX_AVERAGE_ABOVE), average, lambda: tf.cast(square, tf.float32))
    image.set_shape([None, None, square.shape[-1]])
    return image


def preprocess(image, crop_size, image_size):
    """Center crop (None: the largest centred square) in the image's dtype, a box average for crops wider than
    BOX_AVERAGE_ABOVE, antialiased bilinear resize (as PIL/torchvision), scale [0, 255] to [-1, 1]. Training and
    serving share it; below the box average the result equals resizing the whole image cast to float32."""
    image = _box_average(center_crop(image, crop_size), image_size)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


def load_image(path, crop_size, image_size, max_pixels=MAX_PIXELS):
    return preprocess(decode_image(tf.io.read_file(path), path, max_pixels=max_pixels), crop_size, image_size)
