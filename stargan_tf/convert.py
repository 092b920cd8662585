"""Import the official PyTorch StarGAN checkpoints (yunjey/stargan `*-G.ckpt` / `*-D.ckpt`).

  python -m stargan_tf.convert --official_generator 200000-G.ckpt [--official_discriminator 200000-D.ckpt]
      --image_size 128 --c_dim 5 --selected_attrs Black_Hair Blond_Hair Brown_Hair Male Young --model_save_dir OUT

writes a checkpoint in this project's format (with config.json), so export.py, the translate CLI,
`train.py --mode test` and fine-tuning with `train.py --resume_iters` all work from it. Needs torch
(`pip install -r requirements-convert.txt`); nothing else in the project imports it.
"""

import argparse
import os
import re
import sys

import numpy as np

from stargan_tf.cli import fail, first_line
from stargan_tf.config import CONFIG_FILE, DEFAULT_ATTRS, StarGANConfig, parse_step

# Official instance-norm buffers: present with track_running_stats=True, never used (no `.eval()` call).
_IGNORED = ("running_mean", "running_var", "num_batches_tracked")


ACCEPTS = ("The converter accepts a file of torch.save(model.state_dict(), path): a mapping of parameter names to "
           "tensors, as the official solver writes N-G.ckpt and N-D.ckpt")


class CheckpointError(ValueError):
    """The file is not the official checkpoint that was expected; the message says why."""


def read_state_dict(path):
    """Tensors of a `torch.save(model.state_dict(), path)` file (zip or legacy format) as numpy arrays."""
    try:
        import torch
    except ImportError:
        raise ImportError("converting needs torch: pip install -r requirements-convert.txt") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not checkpoints
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        if found:
            raise CheckpointError(f"{path} is not a plain state dict: it holds Python objects ({found.group(1)}), "
                                  f"which the converter never runs. {ACCEPTS}") from None
        detail = "" if "weights_only" in str(e) else f" ({type(e).__name__}: {first_line(e)[:200]})"
        raise CheckpointError(f"{path} is not a PyTorch state_dict file{detail}. {ACCEPTS}") from None
    if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
        other = [str(k) for k, v in state.items() if not hasattr(v, "numpy")] if isinstance(state, dict) else []
        holds = f" (entries that are not tensors: {', '.join(other[:6])})" if other else ""
        raise CheckpointError(f"{path} is not a plain state dict{holds}. {ACCEPTS}")
    return {k: v.detach().cpu().numpy() for k, v in state.items() if not k.endswith(_IGNORED)}


def _conv(weight):
    """PyTorch Conv2d [out, in, kh, kw] and ConvTranspose2d [in, out, kh, kw] -> Keras (kh, kw, in|out, out|in)."""
    return np.transpose(weight, (2, 3, 1, 0))


def _take(state, key, path):
    try:
        return state.pop(key)
    except KeyError:
        raise CheckpointError(f"{path}: missing {key!r}; not an official StarGAN checkpoint of this kind") from None


def _check_option(name, given, found, detail):
    if given is not None and given != found:
        raise CheckpointError(f"checkpoint has {detail}: {name} is {found}, not {given}")


def _check_consumed(state, path):
    if state:
        raise CheckpointError(f"{path}: unexpected keys {', '.join(sorted(state)[:6])}; not an official checkpoint")


def generator_weights(state, path="generator", c_dim=None, conv_dim=None, repeat_num=None):
    """Map an official generator state_dict to (weights by Keras layer name, (c_dim, conv_dim, repeat_num))."""
    state = dict(state)
    if "conv1.weight" in state or "main.0.bias" in state:
        raise CheckpointError(f"{path} looks like a discriminator checkpoint (has conv1/conv2 heads or conv biases); "
                              "pass it as --official_discriminator")
    first = state.get("main.0.weight")
    if first is None or first.ndim != 4 or first.shape[2:] != (7, 7):
        raise CheckpointError(f"{path}: no 7x7 'main.0.weight'; not an official StarGAN generator checkpoint")
    found_conv_dim, found_c_dim = first.shape[0], first.shape[1] - 3
    found_repeat = len({int(m.group(1)) for k in state if (m := re.match(r"main\.(\d+)\.main\.", k))})
    _check_option("c_dim", c_dim, found_c_dim, f"3+{found_c_dim} input channels")
    _check_option("g_conv_dim", conv_dim, found_conv_dim, f"{found_conv_dim} filters in its first layer")
    _check_option("g_repeat_num", repeat_num, found_repeat, f"{found_repeat} residual blocks")

    weights = {}
    def conv(name, key):
        weights[name] = [_conv(_take(state, f"{key}.weight", path))]
    def norm(name, key):
        weights[name] = [_take(state, f"{key}.weight", path), _take(state, f"{key}.bias", path)]

    conv("conv_in", "main.0")
    norm("norm_in", "main.1")
    conv("down1_conv", "main.3")
    norm("down1_norm", "main.4")
    conv("down2_conv", "main.6")
    norm("down2_norm", "main.7")
    for i in range(found_repeat):
        key = f"main.{9 + i}.main"
        conv(f"res{i + 1}_conv1", f"{key}.0")
        norm(f"res{i + 1}_norm1", f"{key}.1")
        conv(f"res{i + 1}_conv2", f"{key}.3")
        norm(f"res{i + 1}_norm2", f"{key}.4")
    up = 9 + found_repeat
    conv("up1_conv", f"main.{up}")
    norm("up1_norm", f"main.{up + 1}")
    conv("up2_conv", f"main.{up + 3}")
    norm("up2_norm", f"main.{up + 4}")
    conv("conv_out", f"main.{up + 6}")
    _check_consumed(state, path)
    return weights, (found_c_dim, found_conv_dim, found_repeat)


def discriminator_weights(state, path="discriminator", image_size=None, c_dim=None, conv_dim=None, repeat_num=None):
    """Map an official discriminator state_dict to (weights by Keras layer name, (image_size, c_dim, conv_dim,
    repeat_num))."""
    state = dict(state)
    if "conv1.weight" not in state or "conv2.weight" not in state:
        hint = " (it looks like a generator checkpoint)" if "main.1.weight" in state else ""
        raise CheckpointError(f"{path}: no 'conv1'/'conv2' heads; not an official StarGAN discriminator{hint}")
    found_repeat = len({k for k in state if re.fullmatch(r"main\.\d+\.weight", k)})
    found_conv_dim = state["main.0.weight"].shape[0]
    cls = state["conv2.weight"]
    found_c_dim, kernel = cls.shape[0], cls.shape[2]
    found_size = kernel * 2**found_repeat
    _check_option("c_dim", c_dim, found_c_dim, f"{found_c_dim} classification outputs")
    _check_option("d_conv_dim", conv_dim, found_conv_dim, f"{found_conv_dim} filters in its first layer")
    _check_option("d_repeat_num", repeat_num, found_repeat, f"{found_repeat} strided convolutions")
    _check_option("image_size", image_size, found_size,
                  f"a {kernel}x{kernel} classification kernel after {found_repeat} halvings")
    weights = {}
    for i in range(found_repeat):
        weights[f"conv{i + 1}"] = [_conv(_take(state, f"main.{2 * i}.weight", path)),
                                   _take(state, f"main.{2 * i}.bias", path)]
    weights["src_conv"] = [_conv(_take(state, "conv1.weight", path))]
    weights["cls_conv"] = [_conv(_take(state, "conv2.weight", path))]
    _check_consumed(state, path)
    return weights, (found_size, found_c_dim, found_conv_dim, found_repeat)


def assign(model, weights):
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


def load_official_generator(path, image_size, c_dim, conv_dim=64, repeat_num=6):
    """A Keras generator holding the weights of an official `*-G.ckpt`."""
    from stargan_tf.models import build_generator

    weights, _ = generator_weights(read_state_dict(path), path, c_dim, conv_dim, repeat_num)
    return assign(build_generator(image_size, c_dim, conv_dim, repeat_num), weights)


def load_official_discriminator(path, image_size, c_dim, conv_dim=64, repeat_num=6):
    """A Keras discriminator holding the weights of an official `*-D.ckpt`."""
    from stargan_tf.models import build_discriminator

    weights, _ = discriminator_weights(read_state_dict(path), path, image_size, c_dim, conv_dim, repeat_num)
    return assign(build_discriminator(image_size, c_dim, conv_dim, repeat_num), weights)


def convert(official_generator, model_save_dir, image_size=128, c_dim=None, selected_attrs=DEFAULT_ATTRS,
            official_discriminator=None, step=None, g_conv_dim=None, g_repeat_num=None, d_conv_dim=None,
            d_repeat_num=None):
    """Write `model_save_dir/ckpt-<step>` and config.json from official checkpoints; returns the prefix.

    Without a discriminator, D starts from fresh weights (fine for export and test; fine-tuning then trains a
    new critic). The optimizers start fresh, as the official code's own resume does.
    """
    import tensorflow as tf

    from stargan_tf.checkpoints import available_steps, checkpoint_writer, training_checkpoint
    from stargan_tf.config import save_config
    from stargan_tf.lock import FolderLock
    from stargan_tf.networks import discriminator_for, generator_for
    from stargan_tf.training import build_optimizers

    c_dim = len(selected_attrs) if c_dim is None else c_dim
    g_state = read_state_dict(official_generator)
    g_weights, (_, g_conv_dim, g_repeat_num) = generator_weights(g_state, official_generator, c_dim, g_conv_dim,
                                                                 g_repeat_num)
    d_weights = None
    if official_discriminator:
        d_weights, (_, _, d_conv_dim, d_repeat_num) = discriminator_weights(
            read_state_dict(official_discriminator), official_discriminator, image_size, c_dim, d_conv_dim,
            d_repeat_num)
    if len(selected_attrs) != c_dim:
        raise CheckpointError(f"--selected_attrs names {len(selected_attrs)} attributes but the checkpoint has "
                              f"c_dim {c_dim}")
    if step is None:
        match = re.match(r"(\d+)-G\.ckpt$", os.path.basename(official_generator))
        step = int(match.group(1)) if match else 0
    config = StarGANConfig(image_size=image_size, c_dim=c_dim, selected_attrs=list(selected_attrs),
                           g_conv_dim=g_conv_dim, g_repeat_num=g_repeat_num, d_conv_dim=d_conv_dim or 64,
                           d_repeat_num=d_repeat_num or 6, model_save_dir=model_save_dir, seed=0,
                           g_ema_decay=0.0).validate()  # the official code keeps no moving average of G
    if step in available_steps(model_save_dir):
        raise FileExistsError(f"{model_save_dir} already holds a checkpoint for step {step}; choose another folder")
    generator, discriminator = assign(generator_for(config), g_weights), discriminator_for(config)
    if d_weights:
        assign(discriminator, d_weights)
    g_optimizer, d_optimizer = build_optimizers(config)  # fresh, with their slots, so that train.py can resume
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    state = training_checkpoint(generator, discriminator, g_optimizer, d_optimizer,
                                tf.Variable(step, dtype=tf.int64, trainable=False, name="step"))
    with FolderLock(model_save_dir):  # no training run writes into the folder meanwhile
        save_config(config, model_save_dir)
        return checkpoint_writer(state, model_save_dir).save(checkpoint_number=step)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert official PyTorch StarGAN checkpoints.")
    parser.add_argument("--official_generator", required=True, help="the official N-G.ckpt")
    parser.add_argument("--official_discriminator", help="the official N-D.ckpt (optional)")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--c_dim", type=int, default=None, help="label width (default: follows --selected_attrs)")
    parser.add_argument("--selected_attrs", "--list", nargs="+", default=list(DEFAULT_ATTRS))
    parser.add_argument("--g_conv_dim", type=int, default=None, help="checked against the checkpoint if given")
    parser.add_argument("--g_repeat_num", type=int, default=None, help="checked against the checkpoint if given")
    parser.add_argument("--d_conv_dim", type=int, default=None, help="checked against the checkpoint if given")
    parser.add_argument("--d_repeat_num", type=int, default=None, help="checked against the checkpoint if given")
    parser.add_argument("--step", type=parse_step, default=None, help="checkpoint number (default: from N-G.ckpt)")
    parser.add_argument("--model_save_dir", required=True, help="output folder for ckpt-<step> and config.json")
    args = parser.parse_args(argv)
    try:
        path = convert(args.official_generator, args.model_save_dir, args.image_size, args.c_dim, args.selected_attrs,
                       args.official_discriminator, args.step, args.g_conv_dim, args.g_repeat_num, args.d_conv_dim,
                       args.d_repeat_num)
    except (CheckpointError, FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        return fail(e)
    print(f"Wrote {path} and {CONFIG_FILE}; export with: python export.py --model_save_dir {args.model_save_dir} "
          "--export_dir EXPORT_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
