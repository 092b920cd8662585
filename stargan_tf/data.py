"""CelebA-layout attribute files and the tf.data input pipeline (decode, crop, resize, targets)."""

import os
import random

import numpy as np
import tensorflow as tf

OFFICIAL_TEST_SIZE = 1999  # the official split: rows with (i+1) < 2000 after the seeded shuffle
SPLIT_SEED = 1234


class DataError(ValueError):
    """The data on disk is not what was expected; the message names the file (and line)."""


def read_attribute_file(attr_path, selected_attrs):
    """Parse a `list_attr_celeba.txt`: a count line, a names line, then `file v1 v2 ...` rows of 1/-1.

    Returns (filenames, labels (n, len(selected_attrs)) float32 0/1, all attribute names). A value counts
    as true only when it is exactly "1", as in the official loader.
    """
    if not os.path.isfile(attr_path):
        raise DataError(f"--attr_path {attr_path}: no such file")
    with open(attr_path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (as some editors write) is not part of the count
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{attr_path}, line {line}: not UTF-8 text (byte "
                        f"{raw[e.start]:#x}); save the file as UTF-8 or ASCII") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise DataError(f"{attr_path}: expected a count line and an attribute-name line, found {len(lines)} line(s)")
    names = lines[1].split()
    if not names:
        raise DataError(f"{attr_path}, line 2: expected the attribute names, found an empty line")
    index = {name: i for i, name in enumerate(names)}
    unknown = [a for a in selected_attrs if a not in index]
    if unknown:
        raise DataError(
            f"--selected_attrs: {', '.join(unknown)} not in {attr_path}; valid names: {' '.join(names)}"
        )
    columns = [index[a] for a in selected_attrs]
    filenames, labels = [], []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(
                f"{attr_path}, line {lineno}: expected a file name and {len(names)} values, found {len(parts)} fields"
            )
        values = parts[1:]
        bad = [v for v in values if v not in ("1", "-1", "0")]
        if bad:
            raise DataError(f"{attr_path}, line {lineno}: values must be 1 or -1, found {bad[0]!r}")
        filenames.append(parts[0])
        labels.append([values[c] == "1" for c in columns])
    if not filenames:
        raise DataError(f"{attr_path}: no image rows after the two header lines")
    try:
        declared = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise DataError(f"{attr_path}, line 1: expected the number of images, found {lines[0]!r}") from None
    if declared != len(filenames):
        raise DataError(f"{attr_path}, line 1: says {declared} images but {len(filenames)} rows follow")
    return filenames, np.asarray(labels, dtype=np.float32).reshape(len(filenames), len(columns)), names


def default_test_size(num_images):
    """The official 1,999 test images, or a tenth of a dataset too small for that (at least one)."""
    return min(OFFICIAL_TEST_SIZE, max(1, num_images // 10)) if num_images > 1 else 0


def split_train_test(filenames, labels, test_size=None):
    """The official split: `random.seed(1234)` shuffle of the rows, the first `test_size` go to test."""
    n = len(filenames)
    test_size = default_test_size(n) if test_size is None else test_size
    if test_size >= n:
        raise DataError(f"--test_size {test_size} leaves no training images out of {n}")
    order = list(range(n))
    random.Random(SPLIT_SEED).shuffle(order)
    test, train = order[:test_size], order[test_size:]
    pick = lambda idx: ([filenames[i] for i in idx], labels[idx].reshape(len(idx), labels.shape[1]))  # noqa: E731
    return pick(train), pick(test)


def check_files_exist(image_dir, filenames, source):
    """Fail early, naming the first missing files, instead of deep inside the input pipeline."""
    if not os.path.isdir(image_dir):
        raise DataError(f"image directory {image_dir} does not exist")
    missing = [f for f in filenames if not os.path.isfile(os.path.join(image_dir, f))]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{len(missing)} image(s) listed in {source} are missing from {image_dir}: {shown}")


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP: the branches of _header_size

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


def permutation_targets(labels, seed):
    """Target labels for a batch: the batch's own labels in a random (stateless, seeded) order."""
    n = tf.shape(labels)[0]
    order = tf.argsort(tf.random.stateless_uniform([n], seed=seed))
    return tf.gather(labels, order)


def other_class_targets(labels, seed):
    """Target labels for one-hot rows: a class drawn uniformly from the other classes (never the source)."""
    n, k = tf.shape(labels)[0], tf.shape(labels)[1]
    source = tf.argmax(labels, axis=1, output_type=tf.int32)
    shift = tf.random.stateless_uniform([n], seed=seed, minval=1, maxval=k, dtype=tf.int32)
    return tf.one_hot((source + shift) % k, k, dtype=labels.dtype)


def _epoch_order(num_files, seed, epoch):
    """The file order of one epoch: a stateless permutation derived from (seed, epoch)."""
    seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.argsort(tf.random.stateless_uniform([num_files], seed=seed))


def _pipeline_files(paths, seed, shard):
    """The files one input pipeline reads (every `num_pipelines`-th) and its own seed."""
    num_pipelines, index = shard
    return list(paths)[index::num_pipelines], int(seed) + 7919 * index


def batch_paths(paths, seed, batch_size, batch_index, shard=(1, 0)):
    """The files of batch `batch_index` of `train_dataset(paths, ..., batch_size, seed, shard=shard)`: the
    candidates to check when that batch fails to decode (the pipeline's error does not name the file)."""
    files, seed = _pipeline_files(paths, seed, shard)
    found = []
    for position in range(batch_index * batch_size, (batch_index + 1) * batch_size):
        epoch, offset = divmod(position, len(files))
        found.append(files[int(_epoch_order(len(files), seed, epoch)[offset])])
    return found


def undecodable(path, crop_size, image_size):
    """Why `path` cannot be loaded as a training image (the error's first line), or None when it can."""
    try:
        load_image(path, crop_size, image_size)
    except tf.errors.OpError as e:
        return next((line for line in e.message.splitlines() if line.strip()), type(e).__name__)
    return None


def train_dataset(paths, labels, crop_size, image_size, batch_size, seed, num_parallel_calls=None,
                  shard=(1, 0), start_batch=0, labels_to_model=None, random_flip=True, other_class=False):
    """Endless training batches: dicts with `image`, `label_org`, `label_trg` and the penalty's `alpha`.

    Every random draw (epoch order, flips, target permutation, interpolation) is stateless and derived from
    `seed` and the position in the stream, so the stream is repeatable and `start_batch` resumes it exactly
    where an earlier run stopped without decoding the skipped images. `shard=(num_pipelines, index)` gives
    each input pipeline its own files. `labels_to_model` maps dataset labels to the generator's layout.
    `random_flip` mirrors each image left-right with probability 1/2 (the official augmentation).
    Targets are the batch's labels permuted (official), or with `other_class` (one-hot labels only) a class
    other than the source, uniformly.
    """
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    num_pipelines, index = shard
    paths, seed = _pipeline_files(paths, seed, shard)
    labels = np.asarray(labels, np.float32)[index::num_pipelines]
    n = len(paths)
    if n == 0:
        raise DataError(f"input pipeline {index} of {num_pipelines} has no training images")
    first = start_batch * batch_size
    first_epoch, offset = divmod(first, n)
    order = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(_epoch_order(n, seed, epoch))
    ).skip(offset)
    positions = tf.data.Dataset.range(first, np.iinfo(np.int64).max)
    table_paths, table_labels = tf.constant(paths), tf.constant(labels)

    def load(position, i):
        path = table_paths[i]
        image = load_image(path, crop_size, image_size)
        if random_flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=tf.stack([tf.cast(seed, tf.int64), position]))
        return image, table_labels[i]

    ds = tf.data.Dataset.zip(positions, order).map(load, num_parallel_calls=parallel, deterministic=True)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(start_batch, np.iinfo(np.int64).max),
                             ds.batch(batch_size, drop_remainder=True))

    def targets(step, batch):
        image, label = batch
        batch_seed = tf.stack([tf.cast(seed, tf.int64) + 1, step])
        label_trg = (other_class_targets if other_class else permutation_targets)(label, batch_seed)
        alpha = tf.random.stateless_uniform([batch_size, 1, 1, 1], seed=batch_seed + [0, 1 << 40])
        if labels_to_model is not None:
            label, label_trg = labels_to_model(label), labels_to_model(label_trg)
        return {"image": image, "label_org": label, "label_trg": label_trg, "alpha": alpha}

    return ds.map(targets, num_parallel_calls=parallel).prefetch(tf.data.AUTOTUNE)


def eval_dataset(paths, labels, crop_size, image_size, batch_size, num_parallel_calls=None):
    """Test batches in file order, without flips: (images, labels); the last batch may be smaller."""
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.float32)))
    ds = ds.map(lambda p, y: (load_image(p, crop_size, image_size), y), num_parallel_calls=parallel)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


DECODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
UNSUPPORTED = (".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".heic")


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _class_files(folder, real_root, own, class_dirs):
    """The files below one class folder, sorted, following symlinks at most once per real folder.

    Hidden files and folders (`.DS_Store`, macOS `._x.jpg`) are skipped, and so is anything whose real
    location is another class's folder or above the dataset root (a link loop such as `red/loop -> ..`).
    """
    visited, files = set(), []
    others = [d for d in class_dirs if d != own and not _inside(own, d)]

    def allowed(real):
        return not any(_inside(real, d) for d in others) and not _inside(real_root, real)

    for current, subdirs, names in os.walk(folder, followlinks=True):
        visited.add(os.path.realpath(current))
        keep = []
        for d in sorted(subdirs):
            real = os.path.realpath(os.path.join(current, d))
            if not d.startswith(".") and real not in visited and allowed(real):
                visited.add(real)
                keep.append(d)
        subdirs[:] = keep
        for f in sorted(names):
            path = os.path.join(current, f)
            if not f.startswith(".") and allowed(os.path.realpath(path)):
                files.append(path)
    return files


def read_class_folders(root, option="--rafd_image_dir"):
    """A folder-per-class dataset (the official RaFD / ImageFolder layout): (paths, one-hot labels, classes).

    Classes are the sub-folders of `root` sorted by name; each class takes the images anywhere below its
    folder (nested folders included). Files that are not images are skipped; images in formats the decoder
    cannot read, images lying directly in `root`, a class folder without images and fewer than two classes
    are errors that name the path.
    """
    if not os.path.isdir(root):
        raise DataError(f"{option} {root}: no such folder")
    entries = sorted(os.listdir(root))
    classes = [e for e in entries if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
    stray = [e for e in entries if e.lower().endswith(DECODABLE + UNSUPPORTED)
             and os.path.isfile(os.path.join(root, e))]
    if stray:
        raise DataError(f"{option} {root}: images must sit in one sub-folder per class, found {stray[0]} directly "
                        f"in {root}")
    if len(classes) < 2:
        raise DataError(f"{option} {root}: expected one sub-folder per class (at least two), found "
                        f"{len(classes)}: {', '.join(classes) or 'none'}")
    real_root = os.path.realpath(root)
    class_dirs = [os.path.realpath(os.path.join(root, name)) for name in classes]
    paths, indices, skipped = [], [], 0
    for index, name in enumerate(classes):
        found = []
        for path in _class_files(os.path.join(root, name), real_root, class_dirs[index], class_dirs):
            if path.lower().endswith(UNSUPPORTED):
                raise DataError(f"{path}: {os.path.splitext(path)[1]} images cannot be decoded; convert to PNG or "
                                "JPEG (supported: " + ", ".join(DECODABLE) + ")")
            if path.lower().endswith(DECODABLE):
                found.append(path)
            else:
                skipped += 1
        if not found:
            raise DataError(f"{option}: class folder {os.path.join(root, name)} holds no images "
                            f"({', '.join(DECODABLE)})")
        paths += found
        indices += [index] * len(found)
    if skipped:
        print(f"{root}: skipped {skipped} file(s) that are not images")
    labels = np.eye(len(classes), dtype=np.float32)[indices]
    return paths, labels, classes


def celeba_files(image_dir, attr_path, selected_attrs, test_size=None):
    """Read and split a CelebA-layout dataset: ((train paths, labels), (test paths, labels))."""
    filenames, labels, _ = read_attribute_file(attr_path, selected_attrs)
    check_files_exist(image_dir, filenames, attr_path)
    (train_names, train_labels), (test_names, test_labels) = split_train_test(filenames, labels, test_size)
    join = lambda names: [os.path.join(image_dir, n) for n in names]  # noqa: E731
    return (join(train_names), train_labels), (join(test_names), test_labels)
