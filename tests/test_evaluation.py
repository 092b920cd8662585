"""The evaluation measures, checked by hand on tiny inputs, the judges, and the evaluation command."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import data, domains, evaluation, measures
from stargan_tf.demo_data import SHAPE_COLOURS, generate_shapes_dataset

SIZE = 16  # tf.image.ssim needs at least its 11x11 window


def uniform(rgb_unit):
    """Images (N, SIZE, SIZE, 3) filled with the given per-image RGB values in [-1, 1]."""
    rgb = np.asarray(rgb_unit, np.float32)
    return np.broadcast_to(rgb[:, None, None, :], (len(rgb), SIZE, SIZE, 3)).copy()


def channel_judge(k=3):
    """A judge whose logit k is 10 x (mean of channel k, scaled to [-1, 1]): it reads what a painter wrote."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(k, use_bias=False)
    outputs = dense(x)
    dense.set_weights([10 * np.eye(3, k, dtype=np.float32)])
    return keras.Model(inputs, outputs)


def painter(transform=lambda label: label):
    """A stand-in generator that paints the (transformed) label into the channels: 1 -> +1, 0 -> -1."""
    def generate(inputs, training=False):
        _, label = inputs
        return uniform(2 * transform(np.asarray(label, np.float32)) - 1)
    return generate


def test_reconstruction_measures_by_hand():
    rec = measures.Reconstruction()
    real = np.full((2, SIZE, SIZE, 3), 102, np.uint8)  # 0.4 in [0, 1]
    reconstructed = np.stack([np.zeros((SIZE, SIZE, 3)), np.full((SIZE, SIZE, 3), 102 / 127.5 - 1)])  # 0.5 and 0.4
    rec.add(real, reconstructed)
    result = rec.result()
    c1 = 0.01**2  # SSIM of two constant images: (2ab + C1) / (a^2 + b^2 + C1); the contrast term is C2 / C2
    assert result["reconstruction_l1"] == pytest.approx((0.1 + 0.0) / 2, abs=1e-6)
    assert result["reconstruction_psnr"] == pytest.approx((20.0 + measures.PSNR_CAP_DB) / 2, abs=1e-3)
    assert result["reconstruction_ssim"] == pytest.approx(((2 * 0.4 * 0.5 + c1) / (0.16 + 0.25 + c1) + 1) / 2,
                                                          abs=1e-4)  # float32 variances of constant windows


def test_class_measures_by_hand():
    spec = domains.class_spec(["red", "green", "blue"])
    layout = domains.LabelLayout((("RaFD", spec),))
    source = np.array([0, 0, 1, 2])
    labels = np.eye(3, dtype=np.float32)[source]
    x = ((uniform(2 * labels - 1) + 1) * 127.5).round().astype(np.uint8)
    judge = channel_judge()
    perfect = measures.class_measures(painter(), judge, layout, "RaFD", x, labels)
    assert perfect["translations"] == 8  # each image into the two other classes
    assert perfect["translation_target_accuracy"] == 1.0 and perfect["source_kept_rate"] == 0.0
    assert perfect["classifier_real_test_accuracy"] == 1.0
    assert perfect["reconstruction_l1"] == 0.0 and perfect["reconstruction_ssim"] == pytest.approx(1.0)
    # A generator that cannot paint blue: it leaves the input as it is when asked for blue.
    def no_blue(inputs, training=False):
        image, label = inputs
        label = np.asarray(label)
        painted = uniform(2 * label - 1)
        keep = label[:, 2] == 1
        painted[keep] = np.asarray(image, np.float32)[keep]
        return painted
    lazy = measures.class_measures(no_blue, judge, layout, "RaFD", x, labels)
    # Translations to red: from images 2, 3 (2, hit); to green: from 0, 1, 3 (3, hit); to blue: 0, 1, 2 kept.
    assert lazy["confusion_matrix"]["counts"] == [[2, 0, 0], [0, 3, 0], [2, 1, 0]]
    assert lazy["per_class_target_accuracy"] == {"red": 1.0, "green": 1.0, "blue": 0.0}
    assert lazy["translation_target_accuracy"] == pytest.approx(5 / 8)
    assert lazy["source_kept_rate"] == pytest.approx(3 / 8)


def test_attribute_measures_by_hand():
    spec = domains.attribute_spec(["Black_Hair", "Blond_Hair", "Male"])  # the hair colours exclude each other
    layout = domains.LabelLayout((("CelebA", spec),))
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], np.float32)
    x = ((uniform(2 * labels - 1) + 1) * 127.5).round().astype(np.uint8)
    judge = channel_judge()
    exact = measures.attribute_measures(painter(), judge, layout, "CelebA", x, labels)
    assert exact["classifier_real_test_accuracy"] == 1.0
    assert exact["translation_target_accuracy"] == 1.0 and exact["attribute_preservation"] == 1.0
    assert exact["translations"] == 12
    # A painter that always makes the person male. Black hair: all four read black (target accuracy 1); of the
    # 7 attributes the target leaves alone, image 0's Male changes (6/7). Blond: 1, and 5 of 6 kept. Male
    # flipped: only image 0 should become male (1/4); hair is kept everywhere (8/8).
    male = measures.attribute_measures(painter(lambda c: np.concatenate([c[:, :2], np.ones_like(c[:, 2:])], 1)),
                                       judge, layout, "CelebA", x, labels)
    assert male["per_attribute_target_accuracy"] == {"Black_Hair": 1.0, "Blond_Hair": 1.0, "Male": 0.25}
    assert male["per_attribute_preservation"] == pytest.approx({"Black_Hair": 6 / 7, "Blond_Hair": 5 / 6,
                                                                "Male": 1.0})
    assert male["attribute_preservation"] == pytest.approx(19 / 21)
    assert male["translation_target_accuracy"] == pytest.approx(0.75)


def test_scalars_name_summary_and_per_domain_numbers():
    values = measures.scalars({"translation_target_accuracy": 0.5, "per_class_target_accuracy": {"a": 1.0, "b": None},
                               "reconstruction_psnr": 20.0, "classes": ["a", "b"]}, "eval")
    assert values == {"eval/translation_target_accuracy": 0.5, "eval/reconstruction_psnr": 20.0,
                      "eval/per_class_target_accuracy/a": 1.0}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return generate_shapes_dataset(str(tmp_path_factory.mktemp("s") / "d"), 30, 10, seed=1)


def test_judge_recognises_real_test_images_and_is_cached(shapes, tmp_path):
    train_dir, test_dir = shapes
    train = data.read_class_folders(train_dir)[:2]
    judge, path, trained = measures.judge_for(str(tmp_path), "RaFD", True, *train, 256, 32)
    assert trained and os.path.isfile(path) and os.listdir(tmp_path) == [os.path.basename(path)]
    x, labels = measures.load_split(*data.read_class_folders(test_dir)[:2], 256, 32)
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8
    assert np.mean(measures.logits(judge, x).argmax(1) == labels.argmax(1)) >= 0.9
    again, again_path, trained_again = measures.judge_for(str(tmp_path), "RaFD", True, *train, 256, 32)
    assert again_path == path and not trained_again
    np.testing.assert_allclose(measures.logits(again, x), measures.logits(judge, x), atol=1e-5)
    _, other_path, _ = measures.judge_for(str(tmp_path), "RaFD", True, train[0][:-1], train[1][:-1], 256, 32,
                                          epochs=1)
    assert other_path != path  # other training data: another judge


def colour_painter(inputs, training=False):
    """Fills each image with its target class's colour (the shapes dataset's classes are colours)."""
    x, label = inputs
    colours = tf.constant(list(SHAPE_COLOURS.values()), tf.float32) / 127.5 - 1.0
    rgb = tf.matmul(tf.constant(label), colours)
    return tf.broadcast_to(rgb[:, None, None, :], tf.shape(x))


def test_judge_reads_painted_target_colours(shapes, tmp_path):
    train_dir, test_dir = shapes
    judge, _, _ = measures.judge_for(str(tmp_path), "RaFD", True, *data.read_class_folders(train_dir)[:2], 256, 32)
    x, labels = measures.load_split(*data.read_class_folders(test_dir)[:2], 256, 32)
    layout = domains.LabelLayout((("RaFD", domains.class_spec(list(SHAPE_COLOURS))),))
    result = measures.class_measures(colour_painter, judge, layout, "RaFD", x, labels)
    assert result["translations"] == 40 * 3
    assert result["translation_target_accuracy"] >= 0.95
    unchanged = measures.class_measures(lambda inputs, training=False: inputs[0], judge, layout, "RaFD", x, labels)
    assert unchanged["translation_target_accuracy"] <= 0.1 and unchanged["source_kept_rate"] >= 0.9


def test_evaluation_command_on_a_folder_model(shapes, tmp_path, capsys):
    from stargan_tf.solver import Solver
    from tests.helpers.configs import tiny_config

    train_dir, test_dir = shapes
    config = tiny_config(tmp_path, dataset="RaFD", rafd_image_dir=train_dir, num_iters=2, log_step=2,
                         sample_step=100, model_save_step=2, use_tensorboard=False, g_ema_decay=0.9)
    Solver(config).train()
    argv = ["--model_save_dir", config.model_save_dir, "--train_dir", train_dir, "--test_dir", test_dir, "--epochs",
            "2", "--output", str(tmp_path / "eval.json")]
    assert evaluation.main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.load(open(tmp_path / "eval.json"))
    assert printed["step"] == 2 and printed["generator"] == "ema" and printed["dataset"] == "RaFD"
    assert printed["classes"] == ["blue", "green", "red", "yellow"]
    assert printed["translations"] == 120 and printed["real_test_images"] == 40
    assert sum(map(sum, printed["confusion_matrix"]["counts"])) == 120
    for key in ("translation_target_accuracy", "source_kept_rate", "classifier_real_test_accuracy",
                "reconstruction_l1", "reconstruction_psnr", "reconstruction_ssim"):
        assert isinstance(printed[key], float)
    assert os.path.dirname(printed["judge"]) == os.path.join(config.model_save_dir, "judges")
    assert evaluation.main(argv + ["--generator", "raw", "--max_test_images", "8"]) == 0
    raw = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert raw["generator"] == "raw" and raw["translations"] == 8 * 3 and raw["judge"] == printed["judge"]


def test_evaluation_command_on_a_celeba_layout_model(demo_dataset, tmp_path, capsys):
    from stargan_tf.solver import Solver
    from tests.helpers.configs import tiny_config

    config = tiny_config(tmp_path, demo_dataset, num_iters=2, log_step=2, sample_step=100, model_save_step=2,
                         use_tensorboard=False)
    Solver(config).train()
    assert evaluation.main(["--model_save_dir", config.model_save_dir, "--epochs", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dataset"] == "CelebA" and result["generator"] == "ema"  # the default keeps an average
    assert result["attributes"] == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert result["real_test_images"] == 8 and result["translations"] == 8 * 5  # the model's own test split
    assert set(result["per_attribute_target_accuracy"]) == set(result["attributes"])
    assert set(result["per_attribute_classifier_real_test_accuracy"]) == set(result["attributes"])
    assert 0.0 <= result["attribute_preservation"] <= 1.0 and result["reconstruction_ssim"] <= 1.0


def test_evaluation_command_errors_name_the_option(shapes, tmp_path, capsys, demo_dataset):
    from stargan_tf.solver import Solver
    from tests.helpers.configs import tiny_config

    train_dir, _ = shapes
    config = tiny_config(tmp_path, dataset="RaFD", rafd_image_dir=train_dir, num_iters=1, log_step=1,
                         sample_step=100, model_save_step=1, use_tensorboard=False)
    Solver(config).train()
    assert evaluation.main(["--model_save_dir", config.model_save_dir]) == 2
    assert "needs --train_dir and --test_dir" in capsys.readouterr().err
    other = tmp_path / "other"
    for name in ("blue", "green"):
        (other / name).mkdir(parents=True)
        (other / name / "a.png").write_bytes(open(os.path.join(train_dir, name, "0000.png"), "rb").read())
    assert evaluation.main(["--model_save_dir", config.model_save_dir, "--train_dir", train_dir, "--test_dir",
                            str(other)]) == 2
    assert (f"--test_dir {other} has classes blue, green, but --train_dir has blue, green, red, yellow"
            in capsys.readouterr().err)
