"""Building blocks shared by the generator and the discriminator."""

import keras
import tensorflow as tf


def instance_norm(name=None, dtype=None):
    """Affine instance normalization (PyTorch `InstanceNorm2d(affine=True)`, epsilon 1e-5).

    `GroupNormalization` with one group per channel normalizes each channel of each image over its
    spatial positions, which is exactly instance normalization; tensorflow-addons' `InstanceNormalization`
    no longer imports on TF >= 2.16.
    """
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="stargan_tf")
class LabelConcat(keras.layers.Layer):
    """Tile a (N, c) label over the image's H x W and append it after the image channels."""

    def call(self, inputs):
        images, labels = inputs
        labels = tf.cast(labels, images.dtype)
        shape = tf.shape(images)
        tiled = tf.tile(labels[:, None, None, :], [1, shape[1], shape[2], 1])
        return tf.concat([images, tiled], axis=-1)

    def compute_output_shape(self, input_shape):
        image_shape, label_shape = input_shape
        return (*image_shape[:-1], image_shape[-1] + label_shape[-1])
