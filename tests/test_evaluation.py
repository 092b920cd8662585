"""The independent classifier and the translation-accuracy count."""

import pytest
import tensorflow as tf

from stargan_tf import data, evaluation
from stargan_tf.demo_data import SHAPE_COLOURS, generate_shapes_dataset


@pytest.fixture(scope="module")
def classifier_and_test(tmp_path_factory):
    train_dir, test_dir = generate_shapes_dataset(str(tmp_path_factory.mktemp("s") / "d"), 30, 10, seed=1)
    x_train, y_train = evaluation.load_images(*data.read_class_folders(train_dir)[:2], 256, 32)
    x_test, y_test = evaluation.load_images(*data.read_class_folders(test_dir)[:2], 256, 32)
    return evaluation.train_classifier(x_train, y_train, 4, epochs=15), x_test, y_test


def test_classifier_recognises_real_test_images(classifier_and_test):
    classifier, x_test, y_test = classifier_and_test
    assert x_test.shape == (40, 32, 32, 3)
    assert evaluation.accuracy(classifier, x_test, y_test) >= 0.9


def paint(x_label, training=False):
    """A stand-in generator that fills the image with the target class's colour."""
    x, label = x_label
    colours = tf.constant(list(SHAPE_COLOURS.values()), tf.float32) / 127.5 - 1.0
    rgb = tf.matmul(tf.constant(label), colours)
    return tf.broadcast_to(rgb[:, None, None, :], x.shape)


def identity(x_label, training=False):
    return tf.constant(x_label[0])


def test_translation_accuracy_counts_every_other_class(classifier_and_test):
    classifier, x_test, y_test = classifier_and_test
    score, count = evaluation.translation_accuracy(paint, classifier, x_test, y_test, 4)
    assert count == 40 * 3  # every test image into each of the three other classes
    assert score >= 0.95
    unchanged, _ = evaluation.translation_accuracy(identity, classifier, x_test, y_test, 4)
    assert unchanged <= 0.1  # an image left as it is stays in its own class, never the target
