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


@keras.saving.register_keras_serializable(package="stargan_tf")
class LeakyReLU(keras.layers.Layer):
    """max(x, slope * x), the same values as `keras.layers.LeakyReLU` for 0 < slope < 1.

    Written with `maximum` because TensorFlow's graph remapper fails (and logs "remapper failed") on a
    Conv2D+BiasAdd+LeakyRelu whose output feeds a PatchConv2D in a gradient graph.
    """

    def __init__(self, negative_slope=0.01, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, inputs):
        return tf.maximum(inputs, inputs * tf.cast(self.negative_slope, inputs.dtype))

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="stargan_tf")
class PatchConv2D(keras.layers.Conv2D):
    """A Conv2D computed as one matrix product over its input patches; same weights, same result.

    For D's last layers (a few output pixels, up to 2048 channels: many weights per pixel) the CPU convolution
    kernels are slow, mostly in the weight gradient; as a GEMM of patches it is several times faster
    (README, Performance).
    """

    def convolution_op(self, inputs, kernel):
        kh, kw = self.kernel_size
        sh, sw = self.strides
        if self.dilation_rate != (1, 1) or self.groups != 1 or self.data_format != "channels_last":
            raise ValueError(f"{self.name}: PatchConv2D supports channels_last, undilated, ungrouped convolutions")
        height, width = inputs.shape[1], inputs.shape[2]
        if self.padding == "same":
            out_h, out_w = -(-height // sh), -(-width // sw)
            pad_h = max((out_h - 1) * sh + kh - height, 0)
            pad_w = max((out_w - 1) * sw + kw - width, 0)
            inputs = tf.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2],
                                     [0, 0]])
        else:
            out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        taps = [
            inputs[:, i: i + (out_h - 1) * sh + 1: sh, j: j + (out_w - 1) * sw + 1: sw, :]
            for i in range(kh) for j in range(kw)
        ]
        patches = tf.reshape(tf.stack(taps, axis=3), [-1, kh * kw * inputs.shape[-1]])
        outputs = tf.matmul(patches, tf.reshape(kernel, [kh * kw * inputs.shape[-1], self.filters]))
        return tf.reshape(outputs, [-1, out_h, out_w, self.filters])
