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
from stargan_tf.config import CONFIG_FILE, load_config, read_config_values
from stargan_tf.domains import layout_for
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


def checkpoint_writer(checkpoint, folder):
    """The manager that saves `checkpoint` as `<folder>/ckpt-<step>`, keeping every step: train.py and fit() (through
    StarGANCheckpoint) and the converter all write through it."""
    return tf.train.CheckpointManager(checkpoint, folder, max_to_keep=None, checkpoint_name=CHECKPOINT_NAME)


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


def loss_scaled(path):
    """Was the checkpoint at prefix `path` trained with --mixed_precision fp16 (its optimizers hold a loss scale)?"""
    with reading(path):
        return any(name.split("/")[:2] in (["g_optimizer", "dynamic_scale"], ["d_optimizer", "dynamic_scale"])
                   for name, _ in tf.train.list_variables(path))


def _kernel_shapes(reader, graph, key):
    """The shapes of the 4-D kernels of the model the checkpoint holds under `key`, in layer order ([] without
    one)."""
    def child(node, name):
        return next((c.node_id for c in graph.nodes[node].children if c.local_name == name), None)

    model = child(0, key)
    operations = None if model is None else child(model, "_operations")
    if operations is None:
        return []
    shapes = reader.get_variable_to_shape_map()
    layers = sorted((c for c in graph.nodes[operations].children if c.local_name.isdigit()),
                    key=lambda c: int(c.local_name))
    return [shapes[a.checkpoint_key] for layer in layers for v in graph.nodes[layer.node_id].children
            for a in graph.nodes[v.node_id].attributes if len(shapes.get(a.checkpoint_key, ())) == 4]


def trained_sizes(path):
    """{option: (value, evidence)} the variable shapes of the checkpoint at prefix `path` fix: c_dim (the label
    width), g_conv_dim from G's first kernel; c_dim, d_conv_dim, d_repeat_num and image_size from D's (when it holds
    D). Read from the file alone, without building a model."""
    with reading(path):
        reader = tf.train.load_checkpoint(path)
        graph = TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    sizes = {}
    g = _kernel_shapes(reader, graph, RAW_KEY) or _kernel_shapes(reader, graph, EMA_KEY)
    if g:
        sizes["labels"] = (g[0][2] - 3, f"G's first kernel takes {g[0][2]} = 3 + {g[0][2] - 3} input channels")
        sizes["g_conv_dim"] = (g[0][3], f"G's first kernel has {g[0][3]} filters")
    d = _kernel_shapes(reader, graph, DISCRIMINATOR_KEY)
    if len(d) >= 3:
        *strided, head_a, head_b = d
        src_like = [3, 3, head_a[2], 1]
        cls = head_b if head_a == src_like and head_b != src_like else head_a
        sizes["classes"] = (cls[3], f"D's classification head has {cls[3]} outputs")
        sizes["d_conv_dim"] = (d[0][3], f"D's first kernel has {d[0][3]} filters")
        sizes["d_repeat_num"] = (len(strided), f"D has {len(strided)} strided convolutions")
        size = cls[0] * 2 ** len(strided)
        sizes["image_size"] = (size, f"D's classification kernel is {cls[0]}x{cls[1]} after {len(strided)} halvings")
    return sizes


def check_config_matches(config, path, source=None):
    """Refuse `config` (read from the config.json `source`; None: command-line options) when its sizes disagree
    with the variable shapes of the checkpoint at prefix `path`: a ValueError naming the file and the key."""
    layout = layout_for(config)
    labels = "c_dim + c2_dim" if config.dataset == "Both" else "c_dim"
    mask = len(layout.parts) if layout.has_mask else 0
    given = {"image_size": ("image_size", config.image_size), "d_repeat_num": ("d_repeat_num", config.d_repeat_num),
             "classes": (labels, layout.cls_dim), "labels": (labels, layout.dim - mask),
             "g_conv_dim": ("g_conv_dim", config.g_conv_dim), "d_conv_dim": ("d_conv_dim", config.d_conv_dim)}
    stored = read_config_values(os.path.dirname(source)) if source else {}
    trained = trained_sizes(path)
    for what, (key, value) in given.items():
        if what not in trained:
            continue
        found, evidence = trained[what]
        found -= mask if what == "labels" else 0
        if value == found:
            continue
        if source is None:
            raise ValueError(f"--{key} {value} does not match the checkpoint {path}, trained with {found} ({evidence})")
        missing = all(k not in stored for k in key.split(" + "))
        raise ValueError(f"{source}: \"{key}\" is {f'missing (read as {value})' if missing else value}, but the "
                         f"checkpoint {path} was trained with {found} ({evidence}); correct \"{key}\" in "
                         f"{os.path.basename(source)}")


def restore_generator(model_save_dir, step="latest", which="auto"):
    """Rebuild G from config.json and load its weights: (generator, config, step); refuses a config.json whose sizes
    disagree with the checkpoint's.

    `which`: 'auto' (the moving average when the checkpoint has one, else G), 'ema' or 'raw'.
    """
    config = load_config(model_save_dir)
    path = checkpoint_path(model_save_dir, step)
    check_config_matches(config, path, os.path.join(model_save_dir, CONFIG_FILE))
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
