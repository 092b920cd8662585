import math

import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import losses


def test_d_adversarial_loss_means_over_patch_map():
    real = tf.constant([[[[1.0], [3.0]]], [[[5.0], [7.0]]]])  # (2, 1, 2, 1): mean 4
    fake = tf.constant([[[[2.0], [2.0]]], [[[0.0], [-2.0]]]])  # mean 0.5
    loss_real, loss_fake = losses.d_adversarial_loss(real, fake)
    assert float(loss_real) == pytest.approx(-4.0)
    assert float(loss_fake) == pytest.approx(0.5)


def test_g_adversarial_loss():
    assert float(losses.g_adversarial_loss(tf.constant([[[[1.0]]], [[[2.0]]]]))) == pytest.approx(-1.5)


def test_attribute_loss_sums_attributes_and_averages_images():
    logits = tf.constant([[0.0, 2.0], [-1.0, 0.5]])
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    # BCE(x, y) = log(1 + e^x) - x y, by hand for each entry.
    by_hand = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1) + (math.log(1 + math.e**0.5) - 0.5)) / 2
    assert float(losses.attribute_classification_loss(logits, labels)) == pytest.approx(by_hand, rel=1e-6)


def test_class_loss_is_softmax_cross_entropy_mean():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    onehot = tf.constant([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    first = -math.log(math.e**2 / (math.e**2 + 2))
    second = -math.log(1 / 3)
    assert float(losses.class_classification_loss(logits, onehot)) == pytest.approx((first + second) / 2, rel=1e-6)


def test_reconstruction_loss_is_mean_absolute_error():
    x = tf.zeros([2, 2, 2, 3])
    y = tf.concat([tf.ones([1, 2, 2, 3]), -3 * tf.ones([1, 2, 2, 3])], axis=0)
    assert float(losses.reconstruction_loss(x, y)) == pytest.approx(2.0)


def test_gradient_penalty_of_linear_critic_is_norm_of_weights():
    w = tf.constant(np.full((1, 2, 2, 3), 0.5, np.float32))  # ||w|| = sqrt(12 * 0.25) = sqrt(3)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    real, fake = tf.random.normal([4, 2, 2, 3]), tf.random.normal([4, 2, 2, 3])
    gp = losses.gradient_penalty(critic, real, fake, tf.random.uniform([4, 1, 1, 1]))
    assert float(gp) == pytest.approx((math.sqrt(3) - 1) ** 2, rel=1e-5)


def test_gradient_penalty_of_quadratic_critic_uses_interpolates():
    critic = lambda x: 0.5 * tf.reduce_sum(x**2, axis=[1, 2, 3])  # noqa: E731  gradient is x_hat itself
    real = tf.fill([2, 1, 1, 4], 2.0)  # interpolate with alpha=0.25 between 2 and 0 -> 0.5; norm = 0.5 * 2 = 1
    fake = tf.zeros([2, 1, 1, 4])
    alpha = tf.constant([0.25, 1.0])[:, None, None, None]  # second: x_hat = 2 -> norm 4 -> (4-1)^2 = 9
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx((0.0 + 9.0) / 2)


def test_gradient_penalty_is_differentiable_for_the_critic():
    w = tf.Variable(tf.fill([1, 1, 1, 2], 2.0))  # gp = (||w|| - 1)^2 with ||w|| = 2 sqrt(2)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, tf.ones([3, 1, 1, 2]), tf.zeros([3, 1, 1, 2]), tf.fill([3, 1, 1, 1], 0.5))
    grad = tape.gradient(gp, w).numpy().ravel()
    norm = 2 * math.sqrt(2)
    np.testing.assert_allclose(grad, [2 * (norm - 1) * 2 / norm] * 2, rtol=1e-5)  # d/dw (|w|-1)^2


def test_global_batch_reduction_adds_up_over_shards():
    logits = tf.random.normal([8, 5], seed=3)
    labels = tf.cast(tf.random.uniform([8, 5], seed=4) > 0.5, tf.float32)
    whole = losses.attribute_classification_loss(logits, labels)
    halves = sum(losses.attribute_classification_loss(logits[i : i + 4], labels[i : i + 4], 8) for i in (0, 4))
    assert float(halves) == pytest.approx(float(whole), rel=1e-6)
