"""The StarGAN generator and discriminator as Keras functional models (the official architecture).

Every convolution uses 'same' padding, which for the even sizes enforced here pads exactly as the
official code's explicit zero padding (1 for 4x4 stride 2 and 3x3, 3 for 7x7), and for the transposed
4x4 stride-2 convolutions crops exactly as PyTorch's `padding=1`. `dtype` is a Keras dtype policy for every
layer but the float32 outputs ('mixed_bfloat16' or 'mixed_float16' for mixed precision).
"""

import keras

from stargan_tf.layers import LabelConcat, LeakyReLU, PatchConv2D, instance_norm
from stargan_tf.shapes import check_discriminator_size, check_generator_size

# A D convolution with at least this many kernel weights per output pixel (per image) runs as one GEMM over its
# patches (PatchConv2D). Measured on CPU (bf16 and float32, 4x4 stride-2 layers, 1-8 pixel outputs, 32-1024
# input channels): the GEMM is faster from this ratio on (conv6 at 128x128: 554 ms -> 69 ms), slower below it.
PATCH_GEMM_MIN_WEIGHTS_PER_PIXEL = 2**19


def _residual_block(x, dim, name, dtype):
    """conv3x3-IN-ReLU-conv3x3-IN with a plain identity shortcut."""
    h = keras.layers.Conv2D(dim, 3, padding="same", use_bias=False, name=f"{name}_conv1", dtype=dtype)(x)
    h = instance_norm(f"{name}_norm1", dtype)(h)
    h = keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(h)
    h = keras.layers.Conv2D(dim, 3, padding="same", use_bias=False, name=f"{name}_conv2", dtype=dtype)(h)
    h = instance_norm(f"{name}_norm2", dtype)(h)
    return keras.layers.Add(name=f"{name}_add", dtype=dtype)([x, h])


def build_generator(image_size=128, c_dim=5, conv_dim=64, repeat_num=6, name="generator", dtype=None):
    """G(x, c): images (N, H, W, 3) in [-1, 1] and labels (N, c_dim) -> images (N, H, W, 3) in [-1, 1]."""
    check_generator_size(image_size)
    images = keras.Input((image_size, image_size, 3), name="images")
    labels = keras.Input((c_dim,), name="labels")
    x = LabelConcat(name="label_concat", dtype=dtype)([images, labels])

    x = keras.layers.Conv2D(conv_dim, 7, padding="same", use_bias=False, name="conv_in", dtype=dtype)(x)
    x = instance_norm("norm_in", dtype)(x)
    x = keras.layers.ReLU(name="relu_in", dtype=dtype)(x)

    dim = conv_dim
    for i in (1, 2):
        dim *= 2
        x = keras.layers.Conv2D(dim, 4, strides=2, padding="same", use_bias=False, name=f"down{i}_conv",
                                dtype=dtype)(x)
        x = instance_norm(f"down{i}_norm", dtype)(x)
        x = keras.layers.ReLU(name=f"down{i}_relu", dtype=dtype)(x)

    for i in range(1, repeat_num + 1):
        x = _residual_block(x, dim, f"res{i}", dtype)

    for i in (1, 2):
        dim //= 2
        x = keras.layers.Conv2DTranspose(dim, 4, strides=2, padding="same", use_bias=False, name=f"up{i}_conv",
                                         dtype=dtype)(x)
        x = instance_norm(f"up{i}_norm", dtype)(x)
        x = keras.layers.ReLU(name=f"up{i}_relu", dtype=dtype)(x)

    x = keras.layers.Conv2D(3, 7, padding="same", use_bias=False, name="conv_out", dtype=dtype)(x)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model([images, labels], outputs, name=name)


def _d_conv(kernel_weights, output_side):
    """The layer class for a 4x4 D convolution of `kernel_weights` weights and `output_side`**2 output pixels."""
    if kernel_weights >= PATCH_GEMM_MIN_WEIGHTS_PER_PIXEL * output_side**2:
        return PatchConv2D
    return keras.layers.Conv2D


def build_discriminator(image_size=128, c_dim=5, conv_dim=64, repeat_num=6, name="discriminator", dtype=None):
    """D(x) -> (src, cls): the PatchGAN real/fake map (N, H/2**repeat_num, ..., 1) and class logits (N, c_dim)."""
    check_discriminator_size(image_size, repeat_num)
    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    channels, dim = 3, conv_dim
    for i in range(repeat_num):
        conv = _d_conv(4 * 4 * channels * dim, image_size // 2 ** (i + 1))
        x = conv(dim, 4, strides=2, padding="same", name=f"conv{i + 1}", dtype=dtype)(x)
        x = LeakyReLU(negative_slope=0.01, name=f"lrelu{i + 1}", dtype=dtype)(x)
        channels, dim = dim, dim * 2

    side = image_size // 2**repeat_num
    src = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, name="src_conv", dtype=dtype)(x)
    src = keras.layers.Activation("linear", dtype="float32", name="src")(src)
    cls = keras.layers.Conv2D(c_dim, side, padding="valid", use_bias=False, name="cls_conv", dtype=dtype)(x)
    cls = keras.layers.Reshape((c_dim,), name="cls_flat", dtype=dtype)(cls)
    cls = keras.layers.Activation("linear", dtype="float32", name="cls")(cls)
    return keras.Model(images, [src, cls], name=name)
