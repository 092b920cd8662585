"""CelebA-layout attribute files and the tf.data input pipeline (decode, crop, resize, targets)."""

import os
import random
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from stargan_tf.cli import first_line
from stargan_tf.preprocessing import DECODABLE, load_image

# The pipeline's functions use no tensor-dependent Python control flow: AutoGraph's rewrite of them would change
# nothing and costs about 2 s in each new process.
plain = tf.autograph.experimental.do_not_convert

OFFICIAL_TEST_SIZE = 1999  # the official split: rows with (i+1) < 2000 after the seeded shuffle
SPLIT_SEED = 1234


class Batch(NamedTuple):
    """One training batch of one dataset, every random draw of its step included (so a step is a pure function of
    the weights and its batch). `train_dataset` yields it as a dict, `batch._asdict()`, which Keras' fit() and
    tf.distribute pass along unchanged; `Batch.of(element)` reads one back."""

    image: tf.Tensor  # (N, H, W, 3) float32 in [-1, 1]
    label_org: tf.Tensor  # (N, dim) the images' own labels, in the generator's layout
    label_trg: tf.Tensor  # (N, dim) the labels to translate them to
    alpha: tf.Tensor  # (N, 1, 1, 1) uniform [0, 1): where on the real-fake line the gradient penalty is taken

    @classmethod
    def of(cls, element):
        """The batch in a dataset element (a dict with at least these four keys; any others are ignored)."""
        return cls(*(element[name] for name in cls._fields))


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
    index = {}
    for i, name in enumerate(names):
        if name in index:
            raise DataError(f"{attr_path}, line 2: attribute {name!r} is named twice (columns {index[name] + 1} and "
                            f"{i + 1}); each attribute needs one column")
        index[name] = i
    unknown = [a for a in selected_attrs if a not in index]
    if unknown:
        raise DataError(
            f"--selected_attrs: {', '.join(unknown)} not in {attr_path}; valid names: {' '.join(names)}"
        )
    columns = [index[a] for a in selected_attrs]
    filenames, labels, row_of = [], [], {}
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
        name = parts[0]
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise DataError(f"{attr_path}, line {lineno}: {name!r} points outside the image folder; rows name files "
                            "inside it (no absolute path, no '..')")
        same = row_of.setdefault(os.path.normpath(name), lineno)
        if same != lineno:
            raise DataError(f"{attr_path}, lines {same} and {lineno}: both list {name}; each image needs one row (a "
                            "second would count it twice and may put it in both the train and the test split)")
        filenames.append(name)
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
        raise DataError(f"--celeba_image_dir {image_dir}: no such folder (the images {source} lists)")
    missing = [f for f in filenames if not os.path.isfile(os.path.join(image_dir, f))]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"--celeba_image_dir {image_dir}: {len(missing)} image(s) listed in {source} are missing: "
                        f"{shown}")


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
    orders, found = {}, []  # a batch spans at most two epochs: each order is drawn once
    for position in range(batch_index * batch_size, (batch_index + 1) * batch_size):
        epoch, offset = divmod(position, len(files))
        if epoch not in orders:
            orders[epoch] = _epoch_order(len(files), seed, epoch).numpy()
        found.append(files[int(orders[epoch][offset])])
    return found


def undecodable(path, crop_size, image_size):
    """Why `path` cannot be loaded as a training image (the error's first line), or None when it can."""
    try:
        load_image(path, crop_size, image_size)
    except tf.errors.OpError as e:
        return first_line(e)
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
        plain(lambda epoch: tf.data.Dataset.from_tensor_slices(_epoch_order(n, seed, epoch)))
    ).skip(offset)
    positions = tf.data.Dataset.range(first, np.iinfo(np.int64).max)
    table_paths, table_labels = tf.constant(paths), tf.constant(labels)

    @plain
    def load(position, i):
        path = table_paths[i]
        image = load_image(path, crop_size, image_size)
        if random_flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=tf.stack([tf.cast(seed, tf.int64), position]))
        return image, table_labels[i]

    ds = tf.data.Dataset.zip(positions, order).map(load, num_parallel_calls=parallel, deterministic=True)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(start_batch, np.iinfo(np.int64).max),
                             ds.batch(batch_size, drop_remainder=True))

    @plain
    def targets(step, batch):
        image, label = batch
        batch_seed = tf.stack([tf.cast(seed, tf.int64) + 1, step])
        label_trg = (other_class_targets if other_class else permutation_targets)(label, batch_seed)
        alpha = tf.random.stateless_uniform([batch_size, 1, 1, 1], seed=batch_seed + [0, 1 << 40])
        if labels_to_model is not None:
            label, label_trg = labels_to_model(label), labels_to_model(label_trg)
        return Batch(image, label, label_trg, alpha)._asdict()

    return ds.map(targets, num_parallel_calls=parallel).prefetch(tf.data.AUTOTUNE)


def eval_dataset(paths, labels, crop_size, image_size, batch_size, num_parallel_calls=None):
    """Test batches in file order, without flips: (images, labels); the last batch may be smaller."""
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.float32)))
    ds = ds.map(plain(lambda p, y: (load_image(p, crop_size, image_size), y)), num_parallel_calls=parallel)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
