import numpy as np
import pytest
import tensorflow as tf

from stargan_tf.layers import instance_norm
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
