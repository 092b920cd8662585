"""MNIST-format files to class folders: the idx reader, the padding, and the written layout."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from stargan_tf import data, idx_folders


def write_idx(path, array, gz=True):
    payload = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)


def fake_source(tmp_path, n_train=6, n_test=3):
    tmp_path.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 3).astype(np.uint8))
    return tmp_path


def test_read_idx_returns_the_declared_shape(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array, gz=False)
    np.testing.assert_array_equal(idx_folders.read_idx(str(tmp_path / "a.gz")), array)
    np.testing.assert_array_equal(idx_folders.read_idx(str(tmp_path / "b")), array)


def test_read_idx_names_a_truncated_file(tmp_path):
    write_idx(tmp_path / "a", np.zeros((2, 3), np.uint8), gz=False)
    (tmp_path / "a").write_bytes((tmp_path / "a").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"a: header declares shape \(2, 3\) \(6 bytes\) but 5 bytes follow"):
        idx_folders.read_idx(str(tmp_path / "a"))


def test_pad_centres_on_black():
    padded = idx_folders.pad_to(np.full((1, 28, 28), 7, np.uint8), 32)
    assert padded.shape == (1, 32, 32)
    assert padded[0, 2:30, 2:30].min() == 7 and padded.sum() == 7 * 28 * 28


def test_folders_follow_the_labels_and_load_as_a_class_dataset(tmp_path):
    source = fake_source(tmp_path / "src")
    train, test = idx_folders.write_folders(str(source), str(tmp_path / "out"), classes=("a", "b", "c"))
    paths, labels, classes = data.read_class_folders(train)
    assert classes == ["0_a", "1_b", "2_c"]
    assert len(paths) == 6 and labels.argmax(1).tolist() == [0, 0, 1, 1, 2, 2]
    original = idx_folders.read_idx(str(source / "train-images-idx3-ubyte.gz"))
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2]))[2:30, 2:30], original[1])  # image 1 is class 1
    assert len(data.read_class_folders(test)[0]) == 3
    with pytest.raises(FileNotFoundError, match="no t10k-images-idx3-ubyte"):
        (source / "t10k-images-idx3-ubyte.gz").unlink()
        idx_folders.write_folders(str(source), str(tmp_path / "out2"), classes=("a", "b", "c"))
