import io
import itertools
import os
import random
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from stargan_tf import data, preprocessing

NAMES = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Male"]


def write_attr_file(path, rows, names=NAMES, count=None):
    lines = [str(len(rows) if count is None else count), " ".join(names)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_parse_selected_attributes_in_given_order(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1]), ("2.jpg", [-1, 1, -1, -1])])
    files, labels, names = data.read_attribute_file(path, ["Male", "Black_Hair"])
    assert files == ["1.jpg", "2.jpg"]
    np.testing.assert_array_equal(labels, [[1, 0], [0, 1]])
    assert names == NAMES


def test_unknown_attribute_lists_valid_names(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1])])
    with pytest.raises(data.DataError, match="Bald not in .*valid names: 5_o_Clock_Shadow Black_Hair Blond_Hair Male"):
        data.read_attribute_file(path, ["Male", "Bald"])


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1]), ("2.jpg", [1, -1, 1])])
    with pytest.raises(data.DataError, match=r"a.txt, line 4: expected a file name and 4 values, found 4 fields"):
        data.read_attribute_file(path, ["Male"])


def test_bad_value_names_line(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1])])
    path_text = open(path).read().replace(" 1\n", " yes\n")
    open(path, "w").write(path_text)
    with pytest.raises(data.DataError, match=r"line 3: values must be 1 or -1, found 'yes'"):
        data.read_attribute_file(path, ["Male"])


def test_count_line_must_match_rows(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1])], count=5)
    with pytest.raises(data.DataError, match="line 1: says 5 images but 1 rows follow"):
        data.read_attribute_file(path, ["Male"])


def test_missing_attribute_file_names_option(tmp_path):
    with pytest.raises(data.DataError, match="--attr_path .*nope.txt: no such file"):
        data.read_attribute_file(str(tmp_path / "nope.txt"), ["Male"])


def official_split(lines):
    """The official loader's split, restated: seed 1234 shuffle of the lines, (i+1) < 2000 go to test."""
    random.seed(1234)
    random.shuffle(lines)
    return [x for i, x in enumerate(lines) if i + 1 >= 2000], [x for i, x in enumerate(lines) if i + 1 < 2000]


def test_split_equals_official_split():
    names = [f"{i:06d}.jpg" for i in range(2100)]
    labels = np.arange(2100, dtype=np.float32)[:, None]
    (train, train_labels), (test, _) = data.split_train_test(names, labels, test_size=1999)
    official_train, official_test = official_split(list(names))
    assert test == official_test and len(test) == 1999
    assert train == official_train
    np.testing.assert_array_equal(train_labels[:, 0], [int(n[:6]) for n in train])


def test_default_test_size_is_official_for_full_celeba_and_small_for_small_sets():
    assert data.default_test_size(202599) == 1999
    assert data.default_test_size(300) == 30
    assert data.default_test_size(5) == 1


def test_test_size_must_leave_training_images():
    with pytest.raises(data.DataError, match="--test_size 3 leaves no training images out of 3"):
        data.split_train_test(["a", "b", "c"], np.zeros((3, 1), np.float32), 3)


def encode(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("L", "JPEG"),
                                      ("RGB", "BMP")])
def test_any_image_mode_decodes_to_rgb(mode, fmt):
    rgb = Image.new("RGB", (20, 10), (200, 40, 10))
    image = rgb.convert(mode)
    decoded = preprocessing.decode_image(tf.constant(encode(image, fmt)), tf.constant("x")).numpy()
    assert decoded.shape == (10, 20, 3)
    expected = np.asarray(image.convert("RGB"), np.float32)
    assert np.abs(decoded - expected).mean() < 6  # JPEG and CMYK conversion rounding


def test_non_image_bytes_name_the_file():
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)not a JPEG, PNG, GIF or BMP image.*notes.txt"):
        preprocessing.decode_image(tf.constant(b"hello world"), tf.constant("notes.txt"))


def test_center_crop_uses_torchvision_offsets():
    image = tf.reshape(tf.range(218 * 178, dtype=tf.float32), [218, 178, 1])
    crop = preprocessing.center_crop(image, 178).numpy()
    assert crop.shape == (178, 178, 1)
    assert crop[0, 0, 0] == 20 * 178  # top = round((218 - 178) / 2) = 20


def test_small_image_keeps_largest_centred_square():
    crop = preprocessing.center_crop(tf.zeros([40, 30, 3]), 178)
    assert crop.shape == (30, 30, 3)


def test_preprocess_scales_to_unit_range():
    half_white = tf.concat([tf.zeros([218, 89, 3]), tf.fill([218, 89, 3], 255.0)], axis=1)
    out = preprocessing.preprocess(half_white, 178, 32).numpy()
    assert out.shape == (32, 32, 3)
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)


def test_train_batches_are_seeded_and_targets_permute_labels(demo_dataset):
    image_dir, attr_path = demo_dataset
    (paths, labels), _ = data.celeba_files(image_dir, attr_path, ["Black_Hair", "Blond_Hair", "Male"], test_size=8)
    first = list(itertools.islice(data.train_dataset(paths, labels, 178, 32, 6, seed=11), 3))
    again = list(itertools.islice(data.train_dataset(paths, labels, 178, 32, 6, seed=11), 3))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label_trg"], b["label_trg"])
    batch = first[0]
    assert batch["image"].shape == (6, 32, 32, 3) and batch["alpha"].shape == (6, 1, 1, 1)
    rows = lambda x: sorted(map(tuple, x.numpy().tolist()))  # noqa: E731
    assert rows(batch["label_org"]) == rows(batch["label_trg"])


def test_start_batch_resumes_the_same_stream(demo_dataset):
    image_dir, attr_path = demo_dataset
    (paths, labels), _ = data.celeba_files(image_dir, attr_path, ["Male"], test_size=8)
    whole = list(itertools.islice(data.train_dataset(paths, labels, 178, 16, 5, seed=2), 30))
    resumed = list(itertools.islice(data.train_dataset(paths, labels, 178, 16, 5, seed=2, start_batch=27), 3))
    for a, b in zip(whole[27:], resumed, strict=True):
        for key in ("image", "label_org", "label_trg", "alpha"):
            np.testing.assert_array_equal(a[key], b[key])


def test_missing_images_are_listed(demo_dataset, tmp_path):
    image_dir, attr_path = demo_dataset
    with pytest.raises(data.DataError, match=rf"^--celeba_image_dir {re.escape(image_dir)}: 2 image\(s\) listed in "
                                             rf"{re.escape(attr_path)} are missing: nope1.jpg, nope2.jpg$"):
        data.check_files_exist(image_dir, ["000001.jpg", "nope1.jpg", "nope2.jpg"], attr_path)
    assert os.path.isdir(image_dir)


def test_a_missing_image_folder_names_the_option(demo_dataset, tmp_path):
    _, attr_path = demo_dataset
    with pytest.raises(data.DataError, match=rf"^--celeba_image_dir {re.escape(str(tmp_path / 'nope'))}: no such "
                                             rf"folder \(the images {re.escape(attr_path)} lists\)$"):
        data.check_files_exist(str(tmp_path / "nope"), ["000001.jpg"], attr_path)


def test_demo_dataset_never_replaces_an_unrelated_folder(tmp_path):
    from stargan_tf.demo_data import generate_demo_dataset

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="exists but holds no complete generated dataset"):
        generate_demo_dataset(str(tmp_path / "mine"), num_images=3)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"


def test_concurrent_demo_generation_keeps_one_complete_copy(tmp_path):
    """Two workers may generate the same demo dataset at once; the loser keeps the winner's copy."""
    import threading

    from stargan_tf.demo_data import generate_demo_dataset

    results = []
    threads = [threading.Thread(target=lambda: results.append(generate_demo_dataset(str(tmp_path / "d"), 30)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    files, _, _ = data.read_attribute_file(results[0][1], ["Male"])
    data.check_files_exist(results[0][0], files, "list")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def asymmetric_folder(tmp_path, count=12):
    """Class folders of images whose left half is dark and right half bright, so a mirror image is detectable."""
    for k, name in enumerate(("a", "b", "c")):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(count // 3):
            pixels = np.zeros((32, 32, 3), np.uint8)
            pixels[:, 16:] = 40 + 60 * k + i
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return data.read_class_folders(str(tmp_path))


def test_random_flip_off_keeps_every_image_as_loaded_and_on_mirrors_some(tmp_path):
    paths, labels, _ = asymmetric_folder(tmp_path)
    on = next(iter(data.train_dataset(paths, labels, None, 32, 12, seed=3)))
    off = next(iter(data.train_dataset(paths, labels, None, 32, 12, seed=3, random_flip=False)))
    np.testing.assert_array_equal(on["label_org"], off["label_org"])  # the same seeded order either way
    right_brighter = lambda x: (x[:, :, 16:].mean(axis=(1, 2, 3)) > x[:, :, :16].mean(axis=(1, 2, 3)))  # noqa: E731
    assert right_brighter(off["image"].numpy()).all()  # no image mirrored
    mirrored = ~right_brighter(on["image"].numpy())
    assert 0 < mirrored.sum() < 12
    np.testing.assert_array_equal(on["image"].numpy()[mirrored], off["image"].numpy()[mirrored][:, :, ::-1])
    np.testing.assert_array_equal(on["image"].numpy()[~mirrored], off["image"].numpy()[~mirrored])


def test_other_class_targets_are_never_the_source_and_cover_the_other_classes():
    labels = tf.one_hot(np.arange(3000) % 4, 4)
    targets = data.other_class_targets(labels, tf.constant([5, 6], tf.int64)).numpy()
    source, target = np.arange(3000) % 4, targets.argmax(axis=1)
    assert targets.sum(axis=1).tolist() == [1.0] * 3000  # one-hot
    assert not (source == target).any()
    shift = (target - source) % 4
    counts = np.bincount(shift, minlength=4)
    assert counts[0] == 0 and all(900 < c < 1100 for c in counts[1:])  # the three other classes, uniformly


def test_other_class_sampling_reaches_the_pipeline_for_one_hot_labels(tmp_path):
    paths, labels, _ = asymmetric_folder(tmp_path)
    batch = next(iter(data.train_dataset(paths, labels, None, 32, 12, seed=3, other_class=True)))
    assert not (batch["label_trg"].numpy().argmax(1) == batch["label_org"].numpy().argmax(1)).any()
    permuted = next(iter(data.train_dataset(paths, labels, None, 32, 12, seed=3)))
    rows = lambda x: sorted(map(tuple, x.numpy().tolist()))  # noqa: E731
    assert rows(permuted["label_trg"]) == rows(permuted["label_org"])


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.jpg", "faces/../../secret.jpg", "..\\secret.jpg"])
def test_row_outside_the_image_folder_is_refused_naming_the_line(tmp_path, name):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1]), (name, [1, -1, 1, 1])])
    with pytest.raises(data.DataError, match=rf"a.txt, line 4: {re.escape(repr(name))} points outside the image "):
        data.read_attribute_file(path, ["Male"])


def test_duplicate_row_names_both_lines(tmp_path):
    rows = [("1.jpg", [1, -1, 1, 1]), ("2.jpg", [1, -1, 1, 1]), ("./1.jpg", [-1, -1, 1, -1])]
    path = write_attr_file(tmp_path / "a.txt", rows)
    with pytest.raises(data.DataError, match=r"a.txt, lines 3 and 5: both list ./1.jpg; each image needs one row"):
        data.read_attribute_file(path, ["Male"])


def test_duplicate_attribute_name_names_both_columns(tmp_path):
    path = write_attr_file(tmp_path / "a.txt", [("1.jpg", [1, -1, 1, 1])], names=["Male", "Young", "Bald", "Male"])
    with pytest.raises(data.DataError, match=r"a.txt, line 2: attribute 'Male' is named twice \(columns 1 and 4\)"):
        data.read_attribute_file(path, ["Young"])


def test_jpeg_pixels_are_those_pil_decodes(tmp_path):
    """Training and serving decode a JPEG with libjpeg's accurate IDCT: the official code's PIL loader's pixels."""
    photo = skdata.astronaut()
    for quality, subsampling in ((95, 0), (75, 2)):
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
        payload = buffer.getvalue()
        expected = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
        np.testing.assert_array_equal(preprocessing.decode_image(tf.constant(payload), None).numpy(), expected)
        assert (tf.io.decode_jpeg(payload).numpy() != expected).any()  # TensorFlow's default IDCT differs
