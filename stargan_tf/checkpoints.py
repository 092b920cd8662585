"""train.py's checkpoint format: its keys, finding checkpoints by step, telling torn ones, and rebuilding the trained
G and D of a model_save_dir."""

import contextlib
import glob
import os
import re
import shutil
import sys

import tensorflow as tf
from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

from stargan_tf.cli import first_line
from stargan_tf.config import load_config
from stargan_tf.networks import discriminator_for, generator_for

CHECKPOINT_NAME = "ckpt"


def available_steps(model_save_dir):
    if not os.path.isdir(model_save_dir):
        return []
    prefix, suffix = CHECKPOINT_NAME + "-", ".index"
    return sorted(int(f[len(prefix) : -len(suffix)]) for f in os.listdir(model_save_dir)
                  if f.startswith(prefix) and f.endswith(suffix) and f[len(prefix) : -len(suffix)].isdigit())


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message names its file."""


def problem(prefix):
    """Why the checkpoint at `prefix` cannot be read (a torn or empty index, missing or empty data), or None."""
    index = prefix + ".index"
    try:
        tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        return f"{index}: {first_line(e)}"
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    if not shards:
        return f"{index}: its data file {os.path.basename(prefix)}.data-00000-of-00001 is missing"
    empty = [s for s in shards if os.path.getsize(s) == 0]
    if empty:
        return f"{empty[0]}: empty data file"
    return None


def checkpoint_path(model_save_dir, step):
    """Resolve `step` (an int or 'latest') to a checkpoint prefix in `model_save_dir`, or explain why not.

    'latest' is the newest readable checkpoint: unreadable ones (a run killed while writing) are skipped
    with a warning naming them.
    """
    steps = available_steps(model_save_dir)
    if step == "latest":
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {model_save_dir} to resume, test or export from")
        for candidate in reversed(steps):
            path = os.path.join(model_save_dir, f"{CHECKPOINT_NAME}-{candidate}")
            reason = problem(path)
            if reason is None:
                return path
            print(f"warning: skipping unreadable checkpoint {reason}", file=sys.stderr)
        raise CheckpointError(f"no readable checkpoint in {model_save_dir} (steps {', '.join(map(str, steps))} "
                              "are all damaged)")
    if step not in steps:
        shown = ", ".join(map(str, steps)) or "none"
        raise FileNotFoundError(f"no checkpoint for step {step} in {model_save_dir}; available steps: {shown}")
    path = os.path.join(model_save_dir, f"{CHECKPOINT_NAME}-{step}")
    reason = problem(path)
    if reason is not None:
        raise CheckpointError(f"checkpoint for step {step} cannot be read: {reason}; choose another step "
                              f"(available: {', '.join(map(str, steps))})")
    return path


@contextlib.contextmanager
def reading(path):
    """Turn a failure while restoring from `path` (truncated or corrupt data) into a CheckpointError naming it."""
    try:
        yield
    except (tf.errors.OpError, IndexError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} could not be read ({type(e).__name__}: {first_line(e)}); it "
                              "is damaged or incomplete: choose another step") from None


_TEMP_FOLDER = re.compile(re.escape(CHECKPOINT_NAME) + r"-\d+_temp$")


def remove_temp_folders(model_save_dir):
    """Delete (and say so) the `ckpt-N_temp` folders a save interrupted by a crash leaves behind; returns their
    names."""
    if not os.path.isdir(model_save_dir):
        return []
    stale = sorted(f for f in os.listdir(model_save_dir) if _TEMP_FOLDER.match(f)
                   and os.path.isdir(os.path.join(model_save_dir, f)))
    for name in stale:
        shutil.rmtree(os.path.join(model_save_dir, name), ignore_errors=True)
        print(f"Removed {os.path.join(model_save_dir, name)}, left by a save that did not finish")
    return stale


def checkpoint_step(path):
    return int(path.rsplit("-", 1)[1])


GENERATORS = ("auto", "ema", "raw")
EMA_KEY, RAW_KEY = "generator_ema", "generator"
DISCRIMINATOR_KEY = "discriminator"


def training_checkpoint(generator, discriminator, g_optimizer, d_optimizer, step, generator_ema=None):
    """The `tf.train.Checkpoint` train.py writes and resumes from (its keys are the file format: train.py, fit(),
    the converter and the restore functions below all read and write through them)."""
    extra = {EMA_KEY: generator_ema} if generator_ema is not None else {}
    return tf.train.Checkpoint(**{RAW_KEY: generator, DISCRIMINATOR_KEY: discriminator}, g_optimizer=g_optimizer,
                               d_optimizer=d_optimizer, step=step, **extra)


def has_ema(path):
    """Does the checkpoint at prefix `path` hold a moving average of the generator?"""
    with reading(path):
        return any(name.startswith(EMA_KEY + "/") for name, _ in tf.train.list_variables(path))


def generator_key(path, which="auto"):
    """The checkpoint entry to load as the generator: the moving average for 'ema' (and for 'auto' when the
    checkpoint holds one), the trained G for 'raw'."""
    if which not in GENERATORS:
        raise ValueError(f"--generator must be one of {', '.join(GENERATORS)}, got {which!r}")
    if which == "raw":
        return RAW_KEY
    if has_ema(path):
        return EMA_KEY
    if which == "ema":
        raise ValueError(f"{path} holds no moving average of G (trained with --g_ema_decay 0); use --generator raw")
    return RAW_KEY


def load_generator_weights(generator, path, which="auto"):
    """Load the generator entry `which` of checkpoint `path` into `generator`; returns the entry's name."""
    key = generator_key(path, which)
    with reading(path):
        tf.train.Checkpoint(**{key: generator}).restore(path).expect_partial().assert_existing_objects_matched()
    return key


def restore_generator(model_save_dir, step="latest", which="auto"):
    """Rebuild G from config.json and load its weights: (generator, config, step).

    `which`: 'auto' (the moving average when the checkpoint has one, else G), 'ema' or 'raw'.
    """
    config = load_config(model_save_dir)
    path = checkpoint_path(model_save_dir, step)
    generator = generator_for(config)
    load_generator_weights(generator, path, which)
    return generator, config, checkpoint_step(path)


def has_discriminator(path):
    """Does the checkpoint at prefix `path` hold D (train.py's always do; a converted G-only one does not)? Read from
    its object graph's root: D's variables are listed under the optimizer's path, not D's own."""
    graph = TrackableObjectGraph()
    with reading(path):
        graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return any(child.local_name == DISCRIMINATOR_KEY for child in graph.nodes[0].children)


def restore_discriminator(model_save_dir, step, config=None):
    """Rebuild D (float32) from config.json and load its weights from the checkpoint at `step` (an int or
    'latest'); a ValueError when that checkpoint holds no discriminator."""
    config = config or load_config(model_save_dir)
    path = checkpoint_path(model_save_dir, step)
    if not has_discriminator(path):
        raise ValueError(f"{path} holds no discriminator, so no classifier can be exported; export without "
                         "--include_classifier")
    discriminator = discriminator_for(config)
    checkpoint = tf.train.Checkpoint(**{DISCRIMINATOR_KEY: discriminator})
    with reading(path):
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    return discriminator
