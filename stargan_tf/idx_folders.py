"""MNIST-format (idx) datasets, such as Fashion-MNIST, as folder-per-class datasets StarGAN trains on.

  apt-get install dataset-fashion-mnist
  python -m stargan_tf.idx_folders --source /usr/share/datasets/fashion-mnist --out data/fashion32

writes `data/fashion32/{train,test}/<k>_<class>/<n>.png`: 60,000 training and 10,000 test images, each 28x28
grey image padded with its black background to 32x32 (`--size`), so that `--image_size 32` sees the whole
product. Folder names start with the label so that their sorted order is the label order.
"""

import argparse
import gzip
import os
import struct

import numpy as np
from PIL import Image

from stargan_tf.demo_data import _build_in_place

FASHION_MNIST_CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle_boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_CLASSES, "digits": DIGIT_CLASSES}
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPE_CODE = 0x08  # unsigned byte, the only type MNIST-format files use


def read_idx(path):
    """An idx file (optionally gzipped) of unsigned bytes as a numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        payload = f.read()
    if len(payload) < 4 or payload[0:2] != b"\0\0":
        raise ValueError(f"{path}: not an idx file (expected two zero bytes, a type code and a rank)")
    code, rank = payload[2], payload[3]
    if code != _DTYPE_CODE:
        raise ValueError(f"{path}: element type code 0x{code:02x}, expected 0x08 (unsigned byte)")
    header = 4 + 4 * rank
    shape = struct.unpack(f">{rank}I", payload[4:header])
    expected = int(np.prod(shape))
    if len(payload) - header != expected:
        raise ValueError(f"{path}: header declares shape {shape} ({expected} bytes) but {len(payload) - header} "
                         "bytes follow")
    return np.frombuffer(payload, np.uint8, offset=header).reshape(shape)


def find_split(source, split):
    """(images path, labels path) of `split` in `source`, gzipped or not."""
    paths = []
    for stem in SPLITS[split]:
        candidates = [os.path.join(source, stem + ext) for ext in (".gz", "")]
        found = [p for p in candidates if os.path.isfile(p)]
        if not found:
            raise FileNotFoundError(f"--source {source}: no {stem}[.gz] (apt-get install dataset-fashion-mnist "
                                    "puts Fashion-MNIST in /usr/share/datasets/fashion-mnist)")
        paths.append(found[0])
    return tuple(paths)


def pad_to(images, size):
    """Centre (N, h, w) images on a black (N, size, size) canvas; larger images are centre-cropped."""
    n, h, w = images.shape
    out = np.zeros((n, size, size), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    src = images[:, max(0, -top) : max(0, -top) + min(h, size), max(0, -left) : max(0, -left) + min(w, size)]
    out[:, max(0, top) : max(0, top) + src.shape[1], max(0, left) : max(0, left) + src.shape[2]] = src
    return out


def write_folders(source, out_dir, classes=FASHION_MNIST_CLASSES, size=32, limit_per_class=None):
    """Write `out_dir/{train,test}/<k>_<class>/<n>.png`; returns (train folder, test folder).

    Built in a temporary folder and renamed into place; an existing complete conversion is reused.
    """
    def build(tmp):
        for split in SPLITS:
            image_path, label_path = find_split(source, split)
            images, labels = read_idx(image_path), read_idx(label_path)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(f"{image_path} and {label_path}: expected (N, h, w) images and (N,) labels, got "
                                 f"{images.shape} and {labels.shape}")
            if labels.max() >= len(classes):
                raise ValueError(f"{label_path}: label {labels.max()} but only {len(classes)} class names")
            images = pad_to(images, size)
            for k, name in enumerate(classes):
                folder = os.path.join(tmp, split, f"{k}_{name}")
                os.makedirs(folder)
                members = np.flatnonzero(labels == k)[:limit_per_class]
                for i in members:
                    Image.fromarray(images[i], mode="L").save(os.path.join(folder, f"{i:05d}.png"))

    _build_in_place(out_dir, "test", build)
    return os.path.join(out_dir, "train"), os.path.join(out_dir, "test")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist",
                        help="folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    parser.add_argument("--out", default="data/fashion32", help="output folder (train/ and test/ inside)")
    parser.add_argument("--classes", choices=sorted(CLASS_NAMES), default="fashion-mnist",
                        help="class names: fashion-mnist, or digits for MNIST itself")
    parser.add_argument("--size", type=int, default=32, help="side of the padded square images")
    parser.add_argument("--limit_per_class", type=int, default=None, help="keep at most this many per class")
    args = parser.parse_args(argv)
    train, test = write_folders(args.source, args.out, CLASS_NAMES[args.classes], args.size, args.limit_per_class)
    print(f"Folder dataset: {train} (train) and {test} (test)")


if __name__ == "__main__":
    main()
