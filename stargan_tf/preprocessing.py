"""Image bytes to model input, shared by training (stargan_tf.data) and serving (stargan_tf.serving), so that the
two never skew: the pixel budget read from the header, decoding, the centre crop, the resize and the scaling;
and the EXIF orientation every path a photo enters turns it by (serving, faces, translate; not training).
"""

import tensorflow as tf

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP: the branches of _header_size
DECODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # their file names (class folders, translate's --input)

# Default pixel budget of an image to decode (width x height from its header): a 48 MP phone photo (8000 x 6000)
# fits and takes 150 MB as uint8, while a 1 MB PNG may declare 20000 x 20000 pixels (1.2 GB as uint8).
MAX_PIXELS = 50_000_000
# Steps walked to find the end of a GIF's first frame, the only one decoded (as PIL and browsers show a GIF): a step
# is a block, or a run of data sub-blocks of one size (encoders write 255-byte ones, so a frame's data takes one or
# two). About 0.05 s of CPU at most; a GIF needing more (hundreds of extensions, or of tiny data sub-blocks of
# mixed sizes, before its first frame ends) is refused.
GIF_MAX_BLOCKS = 512
_GIF_RUN = 4096  # equal-size data sub-blocks skipped by one step at most
_GIF_TRAILER = b"\x3b"
# XMP in a GIF (XMP spec part 3, as Photoshop writes it): an application extension whose data is the raw packet
# (read as sub-blocks of whatever sizes its bytes say) closed by a "magic trailer" 0x01 0xFF 0xFE ... 0x01 0x00 and
# the block terminator, so that any sub-block walk entering the trailer lands on the terminator. The walk skips it
# in one step when no zero byte comes before the trailer's (no sub-block walk can stop earlier), finding that byte
# _GIF_SCAN bytes at a time.
_GIF_XMP_HEAD = b"\x21\xff\x0bXMP DataXMP"
_GIF_XMP_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
_GIF_SCAN = 4096

EXIF_ORIENTATION = 0x0112
# Bytes of a JPEG or PNG read for its EXIF orientation, whatever the upload's size: a JPEG's APP1 Exif segment (at
# most 64 kB) comes first, a PNG's eXIf chunk before its pixel data in practice.
EXIF_PREFIX = 256 * 1024
_EXIF_SEARCH = 64  # JPEG segments or PNG chunks looked at for EXIF, and IFD0 entries


def _hex(contents, count):
    """The first `count` bytes as hex pairs ("52 49 46 46"): printable in an error whatever the bytes are."""
    digits = tf.constant([f"{i:02x}" for i in range(256)])
    raw = tf.io.decode_raw(tf.strings.substr(contents, 0, count), tf.uint8)
    return tf.strings.reduce_join(tf.gather(digits, tf.cast(raw, tf.int32)), separator=" ")


def _uint(data, start, count, big_endian=False):
    """The unsigned integer in bytes data[start:start + count] of an int64 byte vector."""
    places = range(count - 1, -1, -1) if big_endian else range(count)
    return tf.add_n([data[start + i] * (1 << (8 * p)) for i, p in enumerate(places)])


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def _gif_size(contents):
    """(height, width, pixels, complete, first frame) of a GIF from its block structure, no pixel decoded.

    Only the first frame is decoded: `first frame` is the bytes up to the end of its data, closed with the GIF
    trailer, so giflib reads one frame however many follow (all bytes when the walk finds no frame's end; the decoder
    rejects those). The extent is the larger of the logical screen and that frame (TF's decoder sizes its output
    by the frame), pixels its area. `complete` is False when the walk needs more than GIF_MAX_BLOCKS steps. A
    tf.function: eager calls run a graph.
    """
    data = tf.io.decode_raw(tf.strings.join([contents, b"\0"]), tf.uint8)  # uint8: a copy the file's size
    end = tf.size(data, out_type=tf.int64) - 1

    def byte(i):
        return tf.cast(tf.gather(data, tf.minimum(tf.cast(i, tf.int64), end)), tf.int64)

    def word(i):
        return byte(i) + 256 * byte(i + 1)

    def colour_table(flags):  # 3 * 2^(n + 1) bytes when the flags' top bit says one follows
        return tf.where(flags >= 128, 6 * tf.bitwise.left_shift(tf.constant(1, tf.int64), flags % 8), 0)

    def run_end(pos, size):
        """Past the run of data sub-blocks of `size` bytes starting at `pos` (at most _GIF_RUN of them)."""
        sizes = tf.strided_slice(data, [pos], [tf.minimum(pos + _GIF_RUN * (size + 1), end + 1)], [size + 1])
        other = tf.concat([tf.not_equal(tf.cast(sizes, tf.int64), size), [True]], axis=0)
        return pos + tf.argmax(other, output_type=tf.int64) * (size + 1)

    def first_zero(start):
        """The first zero byte at or after `start` (data ends with one), read _GIF_SCAN bytes at a time."""
        def scan(at, _):
            zero = tf.equal(data[at : at + _GIF_SCAN], 0)
            return at + _GIF_SCAN, tf.where(tf.reduce_any(zero), at + tf.argmax(zero, output_type=tf.int64), -1)

        return tf.while_loop(lambda _, found: found < 0, scan, (start, tf.constant(-1, tf.int64)))[1]

    xmp_head, xmp_trailer = [tf.constant(list(b), tf.int64) for b in (_GIF_XMP_HEAD, _GIF_XMP_TRAILER)]

    def xmp_end(pos):
        """Past the XMP extension at `pos`, or -1 when a zero byte ends it before its magic trailer does."""
        zero = first_zero(pos + len(_GIF_XMP_HEAD))
        start = zero - (len(_GIF_XMP_TRAILER) - 2)
        trailer = byte(tf.maximum(start, 0) + tf.range(len(_GIF_XMP_TRAILER), dtype=tf.int64))
        ok = (start >= pos + len(_GIF_XMP_HEAD)) & (zero + 1 < end) & tf.reduce_all(tf.equal(trailer, xmp_trailer))
        return tf.where(ok, zero + 2, -1)

    def step(pos, in_sub_blocks, in_image, width, height):
        b = byte(pos)
        image = ~in_sub_blocks & tf.equal(b, 0x2C)  # image descriptor: left, top, width, height, flags
        extension = ~in_sub_blocks & tf.equal(b, 0x21)  # label byte, then sub-blocks
        xmp = extension & tf.reduce_all(tf.equal(byte(pos + tf.range(len(_GIF_XMP_HEAD), dtype=tf.int64)), xmp_head))
        skipped = tf.cond(xmp, lambda: xmp_end(pos), lambda: tf.constant(-1, tf.int64))
        extension &= skipped < 0
        after = tf.where(in_sub_blocks, tf.where(b > 0, run_end(pos, tf.maximum(b, 1)), pos + 1),
                         tf.where(image, pos + 11 + colour_table(byte(pos + 9)),
                                  tf.where(extension, pos + 2, tf.where(skipped >= 0, skipped, end))))
        return (after, tf.where(in_sub_blocks, b > 0, image | extension), in_image | image,
                tf.where(image, tf.maximum(width, word(pos + 1) + word(pos + 5)), width),
                tf.where(image, tf.maximum(height, word(pos + 3) + word(pos + 7)), height))

    def before_frame_end(pos, in_sub_blocks, in_image, *_):
        return (pos < end) & (in_sub_blocks | ~in_image)

    start = [13 + colour_table(byte(10)), tf.constant(False), tf.constant(False), word(6), word(8)]
    pos, in_sub_blocks, in_image, width, height = tf.while_loop(before_frame_end, step, start,
                                                                maximum_iterations=GIF_MAX_BLOCKS)
    frame_end = in_image & ~in_sub_blocks

    def first_frame():
        return tf.strings.join([tf.strings.substr(contents, tf.constant(0, tf.int64), pos), _GIF_TRAILER])

    first = tf.cond(frame_end, first_frame, lambda: contents)
    return height, width, width * height, frame_end | (pos >= end), first


def _header_size(contents, kind):
    """(height, width, pixels, complete, contents to decode) int64/bool/string that decoding `contents` of format
    `kind` (an index into _MAGIC) yields, read from the header alone; zeros for other bytes or a header cut short
    (the decoder rejects those). A BMP's negative height (rows stored top first) counts as positive; a GIF is cut
    to its first frame (_gif_size), other formats are decoded whole."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, 26), b"\0" * 26]), 0, 26)
    data = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def size(height, width):
        return height, width, height * width, tf.constant(True), contents

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
    JPEGs are decoded exactly as PIL decodes them (`decode_jpeg`); of a GIF only the first frame, as PIL shows it.

    Failures are InvalidArgumentErrors: other bytes say `problem`, `name` (a path, say; None leaves it out) and the
    first bytes in hex; an image over the budget says `name`, its size and the budget.
    """
    matches = [tf.equal(tf.strings.substr(contents, 0, len(m)), m) for m in _MAGIC]
    kind = tf.argmax(tf.cast(tf.stack([*matches, tf.constant(True)]), tf.int32), output_type=tf.int32)
    height, width, pixels, complete, contents = _header_size(contents, kind)
    budget = tf.cast(max_pixels, tf.int64)
    prefix = [] if name is None else [name, ": "]
    over = tf.strings.join([*prefix, tf.strings.as_string(width), " x ", tf.strings.as_string(height),
                            " image, ", tf.strings.as_string(pixels), " pixels to decode, exceeds the budget of ",
                            tf.strings.as_string(budget), " pixels"])
    checks = [tf.debugging.Assert(kind < len(_MAGIC), [problem, *([] if name is None else [name]),
                                                       "first bytes (hex):", _hex(contents, 8)]),
              tf.debugging.Assert(pixels <= budget, [over]),
              tf.debugging.Assert(complete, [tf.strings.join([*prefix, f"GIF of more than {GIF_MAX_BLOCKS} blocks "
                                                                       "before its first frame's end (extensions, "
                                                                       "data sub-blocks of mixed sizes)"])])]
    with tf.control_dependencies(checks):
        contents = tf.identity(contents)
    image = tf.cond(tf.equal(kind, 0), lambda: decode_jpeg(contents),
                    lambda: tf.io.decode_image(contents, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def decode_jpeg(contents):
    """JPEG bytes to uint8 RGB with libjpeg's accurate integer IDCT: the pixels PIL (the official code's loader) and
    browsers decode. TensorFlow's default, the fast IDCT, differs by up to 17 levels on a real photo."""
    return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def exif_orientation(contents):
    """The EXIF orientation (1-8) of JPEG or PNG bytes as PIL's getexif reads it: tag 0x0112 of IFD0 in the first
    APP1 "Exif" segment or eXIf chunk before the pixels, looked for in the first EXIF_PREFIX bytes only (a uint8 copy
    of them, single bytes cast), so its work does not grow with the upload. 1 when there is none, for other formats
    and bad values. A tf.function: eager calls run a graph."""
    data = tf.io.decode_raw(tf.strings.join([tf.strings.substr(contents, 0, EXIF_PREFIX), b"\0" * 16]), tf.uint8)
    last = tf.size(data, out_type=tf.int64) - 1

    def byte(i):
        return tf.cast(tf.gather(data, tf.clip_by_value(i, 0, last)), tf.int64)

    def number(i, count, little=False):
        places = [8 * (k if little else count - 1 - k) for k in range(count)]
        return tf.add_n([tf.bitwise.left_shift(byte(i + k), p) for k, p in enumerate(places)])

    def matches(i, text):
        return tf.reduce_all(tf.equal(byte(i + tf.range(len(text), dtype=tf.int64)), list(text)))

    jpeg, png = matches(0, b"\xff\xd8\xff"), matches(0, b"\x89PNG\r\n\x1a\n")

    def step(pos, tiff):
        """One JPEG segment (FF, marker, length with itself) or PNG chunk (length, type, data, CRC)."""
        segment = tf.equal(byte(pos), 0xFF) & ~tf.equal(byte(pos + 1), 0xDA) & ~tf.equal(byte(pos + 1), 0xD9)
        chunk = ~matches(pos + 4, b"IDAT") & ~matches(pos + 4, b"IEND")
        found = tf.where(jpeg, segment & tf.equal(byte(pos + 1), 0xE1) & matches(pos + 4, b"Exif\0\0"),
                         chunk & matches(pos + 4, b"eXIf"))
        more = tf.where(jpeg, segment, chunk) & ~found
        after = tf.where(jpeg, pos + 2 + number(pos + 2, 2), pos + 12 + number(pos, 4))
        return tf.where(more, after, last), tf.where(found, tf.where(jpeg, pos + 10, pos + 8), tiff)

    start = tf.where(jpeg, tf.constant(2, tf.int64), tf.where(png, tf.constant(8, tf.int64), last))
    _, tiff = tf.while_loop(lambda pos, tiff: (pos < last) & (tiff < 0), step, (start, tf.constant(-1, tf.int64)),
                            maximum_iterations=_EXIF_SEARCH)
    little = tf.equal(byte(tiff), 0x49)  # "II": little-endian TIFF, "MM": big-endian

    def tiff_number(i, count):
        return tf.where(little, number(i, count, little=True), number(i, count))

    ifd = tiff + tiff_number(tiff + 4, 4)
    entries = tf.range(_EXIF_SEARCH, dtype=tf.int64)
    starts = ifd + 2 + 12 * entries
    hit = (entries < tiff_number(ifd, 2)) & tf.equal(tiff_number(starts, 2), EXIF_ORIENTATION)
    value = tf.gather(tiff_number(starts + 8, 2), tf.argmax(tf.cast(hit, tf.int32), output_type=tf.int64))
    valid = (tiff >= 0) & tf.reduce_any(hit) & (value >= 1) & (value <= 8)
    return tf.cast(tf.where(valid, value, 1), tf.int32)


def upright(image, orientation):
    """`image` (H, W, C) turned as EXIF `orientation` (1-8) says it is shown, as PIL's ImageOps.exif_transpose."""
    def transpose():
        return tf.transpose(image, [1, 0, 2])

    turns = [lambda: image, lambda: image[:, ::-1], lambda: image[::-1, ::-1], lambda: image[::-1], transpose,
             lambda: tf.image.rot90(image, 3), lambda: transpose()[::-1, ::-1], lambda: tf.image.rot90(image, 1)]
    return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), turns)


def decode_shown(contents, name, problem="not a JPEG, PNG, GIF or BMP image:", max_pixels=MAX_PIXELS):
    """`decode_image`, then turned upright by the EXIF orientation: the photo as viewers show it."""
    return upright(decode_image(contents, name, problem, max_pixels), exif_orientation(contents))


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


def check_max_pixels(value):
    """`value` when it is a pixel budget (a positive integer); otherwise a ValueError naming --max_pixels. The one
    check of the budget export, serving and translate take."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"--max_pixels must be a positive integer, got {value!r}")
    return value
