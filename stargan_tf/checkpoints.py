"""Finding checkpoints by step and rebuilding a trained generator from a model_save_dir."""

import os

import tensorflow as tf

from stargan_tf import domains
from stargan_tf.config import load_config
from stargan_tf.models import build_generator

CHECKPOINT_NAME = "ckpt"


def available_steps(model_save_dir):
    if not os.path.isdir(model_save_dir):
        return []
    prefix, suffix = CHECKPOINT_NAME + "-", ".index"
    return sorted(int(f[len(prefix) : -len(suffix)]) for f in os.listdir(model_save_dir)
                  if f.startswith(prefix) and f.endswith(suffix) and f[len(prefix) : -len(suffix)].isdigit())


def checkpoint_path(model_save_dir, step):
    """Resolve `step` (an int or 'latest') to a checkpoint prefix in `model_save_dir`, or explain why not."""
    steps = available_steps(model_save_dir)
    if step == "latest":
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {model_save_dir} to resume, test or export from")
        step = steps[-1]
    if step not in steps:
        shown = ", ".join(map(str, steps)) or "none"
        raise FileNotFoundError(f"no checkpoint for step {step} in {model_save_dir}; available steps: {shown}")
    return os.path.join(model_save_dir, f"{CHECKPOINT_NAME}-{step}")


def checkpoint_step(path):
    return int(path.rsplit("-", 1)[1])


def label_metadata(config):
    """(names, exclusive group id per entry or -1, dataset per entry) of the generator's label vector."""
    return domains.layout_for(config).metadata()


def restore_generator(model_save_dir, step="latest"):
    """Rebuild G from config.json and load its weights: (generator, config, step)."""
    config = load_config(model_save_dir)
    path = checkpoint_path(model_save_dir, step)
    generator = build_generator(config.image_size, domains.layout_for(config).dim, config.g_conv_dim,
                                config.g_repeat_num)
    tf.train.Checkpoint(generator=generator).restore(path).expect_partial().assert_existing_objects_matched()
    return generator, config, checkpoint_step(path)
