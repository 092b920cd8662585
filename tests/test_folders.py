"""Folder-per-class datasets (RaFD layout), the mask vector, and joint training."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_tf import data, domains, losses, translate
from stargan_tf.demo_data import generate_shapes_dataset
from stargan_tf.export import export_generator
from stargan_tf.solver import Solver
from stargan_tf.training import classification_loss_for
from tests.helpers.configs import tiny_config
from tests.helpers.grids import split_header
from tests.helpers.in_process import run_main


def make_image(path, size=(20, 20), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, 128).save(path)


def test_classes_are_sorted_and_nested_files_belong_to_their_class(tmp_path):
    make_image(tmp_path / "sad" / "a.png")
    make_image(tmp_path / "angry" / "deeper" / "b.jpg")
    make_image(tmp_path / "angry" / "c.png")
    (tmp_path / "angry" / "notes.txt").write_text("not an image")
    paths, labels, classes = data.read_class_folders(str(tmp_path))
    assert classes == ["angry", "sad"]
    assert [os.path.relpath(p, tmp_path) for p in paths] == ["angry/c.png", "angry/deeper/b.jpg", "sad/a.png"]
    np.testing.assert_array_equal(labels, [[1, 0], [1, 0], [0, 1]])


def test_empty_class_folder_is_an_error(tmp_path):
    make_image(tmp_path / "happy" / "a.png")
    (tmp_path / "neutral").mkdir()
    (tmp_path / "neutral" / "readme.md").write_text("x")
    with pytest.raises(data.DataError, match="class folder .*neutral holds no images"):
        data.read_class_folders(str(tmp_path))


def test_unsupported_image_format_is_named(tmp_path):
    make_image(tmp_path / "a" / "x.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.tiff").write_bytes(b"II*\x00")
    with pytest.raises(data.DataError, match=r"y.tiff: .tiff images cannot be decoded"):
        data.read_class_folders(str(tmp_path))


def test_images_outside_class_folders_are_an_error(tmp_path):
    make_image(tmp_path / "a" / "x.png")
    make_image(tmp_path / "b" / "x.png")
    make_image(tmp_path / "loose.jpg")
    with pytest.raises(data.DataError, match="one sub-folder per class, found loose.jpg directly"):
        data.read_class_folders(str(tmp_path))


def test_one_class_is_not_enough(tmp_path):
    make_image(tmp_path / "only" / "x.png")
    with pytest.raises(data.DataError, match="at least two\\), found 1: only"):
        data.read_class_folders(str(tmp_path))


def test_undecodable_image_is_reported_by_path(tmp_path):
    bad = tmp_path / "b" / "broken.png"
    make_image(tmp_path / "a" / "x.png")
    os.makedirs(bad.parent)
    bad.write_bytes(b"this is no png")
    paths, labels, _ = data.read_class_folders(str(tmp_path))
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.png"):
        list(data.eval_dataset(paths, labels, 256, 16, 2))


def test_mask_vector_layout():
    layout = domains.LabelLayout((("CelebA", domains.attribute_spec(["Black_Hair", "Blond_Hair", "Male"])),
                                  ("RaFD", domains.class_spec(["angry", "happy"]))))
    assert (layout.dim, layout.cls_dim, layout.offset("RaFD")) == (3 + 2 + 2, 5, 3)
    np.testing.assert_array_equal(layout.encode("CelebA", [[1, 0, 1]]), [[1, 0, 1, 0, 0, 1, 0]])
    np.testing.assert_array_equal(layout.encode("RaFD", [[0, 1]]), [[0, 0, 0, 0, 1, 0, 1]])
    targets = layout.targets("RaFD", np.array([[1, 0]], np.float32))
    assert len(targets) == 5  # three CelebA domains, two RaFD classes
    np.testing.assert_array_equal(targets[3], [[0, 0, 0, 1, 0, 0, 1]])
    names, groups, label_dataset = layout.metadata()
    assert names == ["Black_Hair", "Blond_Hair", "Male", "angry", "happy", "mask:CelebA", "mask:RaFD"]
    assert groups == [0, 0, -1, 1, 1, 2, 2]
    assert label_dataset == ["CelebA"] * 3 + ["RaFD"] * 2 + ["mask"] * 2
    assert domains.LabelLayout.from_metadata(names, groups, label_dataset) == layout


def test_only_the_known_datasets_slice_enters_the_classification_loss():
    layout = domains.LabelLayout((("CelebA", domains.attribute_spec(["Male", "Young"])),
                                  ("RaFD", domains.class_spec(["a", "b", "c"]))))
    logits = tf.constant([[9.0, -9.0, 2.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0, 0.0]])
    rafd_label = tf.constant(layout.encode("RaFD", [[1, 0, 0], [0, 0, 1]]))
    by_hand = (-np.log(np.exp(2) / (np.exp(2) + 2)) - np.log(1 / 3)) / 2  # softmax CE over logits[:, 2:5]
    assert float(classification_loss_for(layout, "RaFD")(logits, rafd_label)) == pytest.approx(by_hand, rel=1e-6)
    celeba_label = tf.constant(layout.encode("CelebA", [[1, 0], [1, 1]]))
    expected = losses.attribute_classification_loss(logits[:, :2], tf.constant([[1.0, 0], [1, 1]]))
    assert float(classification_loss_for(layout, "CelebA")(logits, celeba_label)) == pytest.approx(float(expected))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return generate_shapes_dataset(str(tmp_path_factory.mktemp("shapes") / "data"), 8, 2, seed=0)


def folder_config(tmp_path, **changes):
    return tiny_config(tmp_path, None, **{"num_iters": 4, "log_step": 2, "sample_step": 4, "model_save_step": 4,
                                          "use_tensorboard": False, "seed": 5, "test_size": None, **changes})


def test_rafd_layout_end_to_end(shapes, tmp_path):
    train_dir, test_dir = shapes
    config = folder_config(tmp_path, dataset="RaFD", rafd_image_dir=train_dir)
    solver = Solver(config)
    assert solver.config.c_dim == 4 and solver.config.rafd_classes == ["blue", "green", "red", "yellow"]
    assert config.rafd_classes is None and config.c_dim is None  # the run's own value; the config given is left
    assert solver.train() == 4
    split_header(tmp_path / "samples" / "4-images.png", rows=4, columns=5, side=32 * 3)
    test_config = folder_config(tmp_path, dataset="RaFD", rafd_image_dir=test_dir, mode="test", test_iters=4)
    written = Solver(test_config).test()
    assert [os.path.basename(p) for p in written] == ["1-images.png", "2-images.png"]  # 8 test images, batch 4
    export = export_generator(config.model_save_dir, str(tmp_path / "exports"))
    meta = tf.saved_model.load(export).signatures["metadata"]()
    assert [n.decode() for n in meta["attribute_names"].numpy()] == ["blue", "green", "red", "yellow"]
    assert meta["exclusive_group"].numpy().tolist() == [0, 0, 0, 0]


def test_rafd_c_dim_mismatch_is_an_error(shapes, tmp_path):
    config = folder_config(tmp_path, dataset="RaFD", rafd_image_dir=shapes[0], c_dim=8)
    with pytest.raises(ValueError, match="--c_dim 8 does not match the 4 classes \\(blue, green, red, yellow\\)"):
        Solver(config)


def test_test_folder_with_other_classes_is_refused(shapes, tmp_path):
    config = folder_config(tmp_path, dataset="RaFD", rafd_image_dir=shapes[0], rafd_classes=["a", "b", "c", "d"])
    with pytest.raises(data.DataError, match="has classes blue, green, red, yellow, but the model was trained on a"):
        Solver(config)


def test_joint_training_with_mask_vector(shapes, demo_dataset, tmp_path):
    image_dir, attr_path = demo_dataset
    config = folder_config(tmp_path, dataset="Both", rafd_image_dir=shapes[0], celeba_image_dir=image_dir,
                           attr_path=attr_path, test_size=4)
    solver = Solver(config)
    assert (solver.config.c_dim, solver.config.c2_dim) == (5, 4)
    assert solver.G.inputs[1].shape[-1] == 5 + 4 + 2 and solver.D.outputs[1].shape[-1] == 5 + 4
    solver.train()
    assert int(solver.trainer.d_optimizer.iterations.numpy()) == 8  # a CelebA and a RaFD batch per iteration
    columns = 1 + 5 + 4
    split_header(tmp_path / "samples" / "4-images.png", rows=8, columns=columns, side=32 * 3)
    test_config = folder_config(tmp_path, dataset="Both", rafd_image_dir=shapes[1], celeba_image_dir=image_dir,
                                attr_path=attr_path, test_size=4, mode="test", test_iters="latest")
    written = [os.path.basename(p) for p in Solver(test_config).test()]
    assert written == ["CelebA-1-images.png", "RaFD-1-images.png", "RaFD-2-images.png"]

    export = export_generator(config.model_save_dir, str(tmp_path / "exports"))
    meta = tf.saved_model.load(export).signatures["metadata"]()
    assert [d.decode() for d in meta["label_dataset"].numpy()] == ["CelebA"] * 5 + ["RaFD"] * 4 + ["mask"] * 2

    photo = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photo)
    result = run_main(translate.main, ["--export_dir", export, "--input", str(photo), "--source", "Male=1", "--set",
                                       "red=1", "--output", str(tmp_path / "o")])
    assert result.returncode == 0, result.stderr
    from stargan_tf.serving import decode_square
    x = decode_square(tf.constant(photo.read_bytes()), 32).numpy()[None]
    label = np.array([[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1]], np.float32)  # CelebA part zero, red, RaFD mask
    expected = (solver.G([x, label]).numpy()[0] + 1) * 127.5
    got = np.asarray(Image.open(tmp_path / "o" / "p.png"), np.float32)
    assert np.abs(got - expected).max() <= 0.5 + 1e-3
