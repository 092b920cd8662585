import keras
import numpy as np
import tensorflow as tf

from stargan_tf.optimizers import FusedAdam


def run(optimizer_class, steps=5):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(50, 7)).astype(np.float32)
    variable = keras.Variable(start)
    optimizer = optimizer_class(1e-3, beta_1=0.5, beta_2=0.999)

    @tf.function
    def step(grad):
        optimizer.apply_gradients([(grad, variable)])

    for _ in range(steps):
        step(tf.constant(rng.normal(size=(50, 7)).astype(np.float32)))
    return start, variable.numpy(), int(optimizer.iterations.numpy())


def test_fused_adam_matches_keras_adam():
    start, expected, _ = run(keras.optimizers.Adam)
    _, got, iterations = run(FusedAdam)
    assert iterations == 5
    assert np.abs(expected - start).max() > 1e-3  # the variable moved
    np.testing.assert_allclose(got, expected, atol=1e-6)
