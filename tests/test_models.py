import keras
import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import models
from stargan_tf.layers import LeakyReLU, PatchConv2D, instance_norm
from stargan_tf.losses import gradient_penalty
from stargan_tf.models import build_discriminator, build_generator

OFFICIAL_COUNTS = [  # (image_size, c_dim, d_repeat_num, G, D) from the official code
    (128, 5, 6, 8_430_528, 44_762_048),
    (64, 5, 6, 8_430_528, 44_731_328),
    (32, 5, 5, 8_430_528, 11_160_512),
    (256, 5, 6, 8_430_528, 44_884_928),
    (128, 8, 6, 8_439_936, 44_786_624),
]


@pytest.mark.parametrize("size,c_dim,d_repeat,g_params,d_params", OFFICIAL_COUNTS)
def test_parameter_counts_equal_official(size, c_dim, d_repeat, g_params, d_params):
    assert build_generator(size, c_dim).count_params() == g_params
    assert build_discriminator(size, c_dim, repeat_num=d_repeat).count_params() == d_params


def test_joint_training_counts_equal_official():
    assert build_generator(256, 5 + 8 + 2).count_params() == 8_461_888
    assert build_discriminator(256, 5 + 8).count_params() == 45_147_072


def test_generator_output_shape_and_range():
    g = build_generator(32, 3, conv_dim=8, repeat_num=1)
    out = g([tf.random.uniform([2, 32, 32, 3], -1, 1), tf.constant([[1.0, 0, 1], [0, 1, 0]])])
    assert out.shape == (2, 32, 32, 3)
    assert out.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(out))) <= 1.0


def test_discriminator_output_shapes():
    src, cls = build_discriminator(128, 7, conv_dim=4)(tf.zeros([3, 128, 128, 3]))
    assert src.shape == (3, 2, 2, 1)
    assert cls.shape == (3, 7)


def test_generator_layer_order_matches_official():
    g = build_generator(32, 5, conv_dim=8, repeat_num=2)
    kernels = [tuple(v.shape) for v in g.trainable_variables if "kernel" in v.path]
    assert kernels == [(7, 7, 8, 8), (4, 4, 8, 16), (4, 4, 16, 32)] + [(3, 3, 32, 32)] * 4 + [
        (4, 4, 16, 32), (4, 4, 8, 16), (7, 7, 8, 3)]
    assert not [v for v in g.trainable_variables if v.path.endswith("bias") and "norm" not in v.path]


def test_label_changes_generator_output():
    g = build_generator(16, 2, conv_dim=4, repeat_num=1)
    x = tf.random.uniform([1, 16, 16, 3], -1, 1, seed=1)
    a = g([x, tf.constant([[1.0, 0.0]])])
    b = g([x, tf.constant([[0.0, 1.0]])])
    assert float(tf.reduce_max(tf.abs(a - b))) > 1e-4


def test_too_small_image_for_discriminator_is_a_clear_error():
    with pytest.raises(ValueError, match=r"multiple of 2\*\*d_repeat_num = 64"):
        build_discriminator(32, 5, repeat_num=6)


def test_generator_rejects_size_not_divisible_by_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_generator(30, 5)


def test_instance_norm_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(2, 5, 7, 4)).astype(np.float32)
    layer = instance_norm()
    layer.build(x.shape)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("side,filters,kernel,strides,padding", [
    (4, 6, 4, 2, "same"),  # D's conv6 at 128x128, in miniature
    (8, 6, 4, 2, "same"),
    (2, 1, 3, 1, "same"),  # src_conv
    (2, 5, 2, 1, "valid"),  # cls_conv
    (6, 3, 3, 2, "same"),  # SAME pads 0 before and 1 after
])
def test_patch_conv_equals_conv2d_with_same_weights(side, filters, kernel, strides, padding):
    x = tf.random.stateless_normal([3, side, side, 4], seed=[1, 2])
    conv = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)
    patch = PatchConv2D(filters, kernel, strides=strides, padding=padding)
    conv(x)
    patch.build(x.shape)
    patch.set_weights([w + 0.1 for w in conv.get_weights()])  # a non-zero bias too
    conv.set_weights(patch.get_weights())

    def grads(layer):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * y)
            dx = inner.gradient(loss, x)
            second = tf.reduce_sum(dx * dx)  # the gradient penalty's double backprop
        return [y, dx, *outer.gradient(second, layer.trainable_variables)]

    for a, b in zip(grads(conv), grads(patch), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(a))))


@pytest.mark.parametrize("policy,dtype", [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)])
def test_patch_conv_under_mixed_precision_matches_conv2d(policy, dtype):
    x = tf.random.stateless_normal([2, 4, 4, 64], seed=[3, 4])
    conv = keras.layers.Conv2D(32, 4, strides=2, padding="same", dtype=policy)
    patch = PatchConv2D(32, 4, strides=2, padding="same", dtype=policy)
    conv(x)
    patch.build(x.shape)
    patch.set_weights(conv.get_weights())
    a, b = conv(x), patch(x)
    assert b.dtype == dtype and patch.kernel.dtype == "float32"
    np.testing.assert_allclose(tf.cast(b, tf.float32).numpy(), tf.cast(a, tf.float32).numpy(), rtol=0,
                               atol=0.02 * float(tf.reduce_max(tf.abs(tf.cast(a, tf.float32)))))


@pytest.mark.parametrize("size,conv_dim,repeat_num,expected", [
    (128, 64, 6, ["conv5", "conv6"]),  # 4x4 and 2x2 outputs of 512->1024 and 1024->2048 channels
    (64, 64, 6, ["conv5", "conv6"]),
    (32, 32, 5, ["conv5"]),  # make demo's D: only the 1x1 256->512 layer
    (128, 8, 6, []),
])
def test_discriminator_runs_its_many_weights_per_pixel_layers_as_patch_gemms(size, conv_dim, repeat_num, expected):
    d = build_discriminator(size, 5, conv_dim=conv_dim, repeat_num=repeat_num)
    assert [layer.name for layer in d.layers if isinstance(layer, PatchConv2D)] == expected


def test_discriminator_with_patch_gemms_equals_plain_convolutions(monkeypatch):
    monkeypatch.setattr(models, "PATCH_GEMM_MIN_WEIGHTS_PER_PIXEL", 512)  # a tiny D with both kinds of layer
    fast = build_discriminator(32, 5, conv_dim=8, repeat_num=5)
    assert [layer.name for layer in fast.layers if isinstance(layer, PatchConv2D)] == ["conv3", "conv4", "conv5"]
    monkeypatch.setattr(models, "PATCH_GEMM_MIN_WEIGHTS_PER_PIXEL", 2**40)
    plain = build_discriminator(32, 5, conv_dim=8, repeat_num=5)
    assert not [layer for layer in plain.layers if isinstance(layer, PatchConv2D)]
    plain.set_weights(fast.get_weights())
    real = tf.random.stateless_uniform([4, 32, 32, 3], [3, 4], -1, 1)
    fake = tf.random.stateless_uniform([4, 32, 32, 3], [5, 6], -1, 1)
    alpha = tf.random.stateless_uniform([4, 1, 1, 1], [7, 8])

    def outputs_and_penalty_grads(d):
        with tf.GradientTape() as tape:
            penalty = gradient_penalty(lambda z: d(z)[0], real, fake, alpha, 4)
        grads = tape.gradient(penalty, d.trainable_variables)
        zeros = [tf.zeros(v.shape) for v in d.trainable_variables]  # no path (cls, biases) counts as zero
        return [*d(real), penalty, *[z if g is None else g for g, z in zip(grads, zeros, strict=True)]]

    for a, b in zip(outputs_and_penalty_grads(plain), outputs_and_penalty_grads(fast), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5 * float(tf.reduce_max(tf.abs(a))))


def test_leaky_relu_equals_keras_leaky_relu_and_its_gradient():
    x = tf.constant([-3.0, -0.5, -1e-30, 1e-30, 0.25, 7.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = LeakyReLU(negative_slope=0.01)(x)
        keras_ = keras.layers.LeakyReLU(negative_slope=0.01)(x)
    np.testing.assert_array_equal(ours.numpy(), keras_.numpy())
    np.testing.assert_array_equal(tape.gradient(ours, x).numpy(), np.float32([0.01, 0.01, 0.01, 1, 1, 1]))
    np.testing.assert_array_equal(tape.gradient(keras_, x).numpy(), np.float32([0.01, 0.01, 0.01, 1, 1, 1]))
