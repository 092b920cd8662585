"""Which image sizes the networks accept: plain arithmetic, shared by the option checks (config) and the builders."""


def check_generator_size(image_size):
    """Raise a clear error unless `image_size` is a multiple of 4 (two stride-2 halvings in G)."""
    if image_size < 4 or image_size % 4:
        raise ValueError(
            f"image_size must be a multiple of 4 (the generator downsamples twice by 2), got {image_size}"
        )


def check_discriminator_size(image_size, repeat_num):
    """Raise a clear error unless `image_size` is a positive multiple of 2**repeat_num."""
    if repeat_num < 1:
        raise ValueError(f"d_repeat_num must be at least 1, got {repeat_num}")
    factor = 2**repeat_num
    if image_size < factor or image_size % factor:
        raise ValueError(
            f"image_size {image_size} must be a multiple of 2**d_repeat_num = {factor}: the discriminator halves "
            f"the image {repeat_num} times (image_size / 2**d_repeat_num = {image_size / factor:g}); "
            f"use a larger --image_size or a smaller --d_repeat_num"
        )
