"""The networks of a configuration: G and D sized for its label layout (the one rule for both their shapes)."""

from stargan_tf import domains
from stargan_tf.models import build_discriminator, build_generator


def generator_for(config, layout=None, name="generator", dtype=None):
    """G for `config`'s architecture taking `layout`'s labels (default: the layout the config trains)."""
    layout = layout or domains.layout_for(config)
    return build_generator(config.image_size, layout.dim, config.g_conv_dim, config.g_repeat_num, name=name,
                           dtype=dtype)


def discriminator_for(config, layout=None, dtype=None):
    """D for `config`'s architecture, classifying into every domain of `layout` (the mask vector excluded)."""
    layout = layout or domains.layout_for(config)
    return build_discriminator(config.image_size, layout.cls_dim, config.d_conv_dim, config.d_repeat_num,
                               dtype=dtype)
