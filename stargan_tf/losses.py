"""StarGAN's loss terms as small pure functions (paper Eq. 1-4, WGAN-GP form of Eq. 1).

Each loss reduces over the batch by dividing by `global_batch_size` when it is given, so that under a
`tf.distribute` strategy the per-replica values add up to the single-device loss of the global batch;
without it the local batch size is used, which is the official definition on one device.
"""

import tensorflow as tf


def _batch_mean(per_example, global_batch_size):
    per_example = tf.cast(per_example, tf.float32)
    if global_batch_size is None:
        return tf.reduce_mean(per_example)
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size, tf.float32)


def _per_example_mean(x):
    """Mean over every axis but the first, in float32."""
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def d_adversarial_loss(real_src, fake_src, global_batch_size=None):
    """Critic's Wasserstein loss: -mean(D(x)) + mean(D(G(x, c))), each mean over the PatchGAN map too."""
    real = _batch_mean(_per_example_mean(real_src), global_batch_size)
    fake = _batch_mean(_per_example_mean(fake_src), global_batch_size)
    return -real, fake


def g_adversarial_loss(fake_src, global_batch_size=None):
    """Generator's Wasserstein loss: -mean(D(G(x, c)))."""
    return -_batch_mean(_per_example_mean(fake_src), global_batch_size)


def gradient_penalty(critic, real, fake, alpha, global_batch_size=None, scale=1.0):
    """WGAN-GP: mean over x_hat = alpha*real + (1-alpha)*fake of (||dD_src(x_hat)/dx_hat||_2 - 1)**2.

    `critic` maps images to the src output; `alpha` has shape (N, 1, 1, 1). The gradient of the sum of
    the src map is taken (the official `grad_outputs=ones`), and the outer tape differentiates through it.
    `scale` multiplies the inner gradient's seed and divides it out again: float16 critics need it to keep
    their input gradients from underflowing; it changes nothing else.
    """
    real = tf.cast(tf.stop_gradient(real), tf.float32)
    fake = tf.cast(tf.stop_gradient(fake), tf.float32)
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        src = tf.cast(critic(x_hat), tf.float32) * scale
    grads = tf.cast(tape.gradient(src, x_hat), tf.float32) / scale
    norms = tf.sqrt(tf.reduce_sum(tf.reshape(tf.square(grads), [tf.shape(grads)[0], -1]), axis=1))
    return _batch_mean(tf.square(norms - 1.0), global_batch_size)


def attribute_classification_loss(logits, labels, global_batch_size=None):
    """Multi-label loss (CelebA): sigmoid cross-entropy summed over attributes, averaged over images."""
    labels = tf.cast(labels, tf.float32)
    per_example = tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32)), axis=1
    )
    return _batch_mean(per_example, global_batch_size)


def class_classification_loss(logits, onehot_labels, global_batch_size=None):
    """Single-label loss (RaFD, folder datasets): softmax cross-entropy averaged over images."""
    per_example = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.cast(onehot_labels, tf.float32), logits=tf.cast(logits, tf.float32)
    )
    return _batch_mean(per_example, global_batch_size)


def reconstruction_loss(real, reconstructed, global_batch_size=None):
    """Cycle loss: mean absolute difference |x - G(G(x, c), c')| over every pixel and channel."""
    diff = tf.abs(tf.cast(real, tf.float32) - tf.cast(reconstructed, tf.float32))
    return _batch_mean(_per_example_mean(diff), global_batch_size)
