"""Export a trained generator into TF Serving's numbered-version layout: `<export_dir>/<version>/`."""

import os
import shutil
import tempfile

from stargan_tf import data, serving
from stargan_tf.checkpoints import label_metadata, restore_generator


def directory_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def build_server(generator, config, max_pixels=data.MAX_PIXELS):
    names, groups, datasets = label_metadata(config)
    return serving.GeneratorServer(generator, names, config.image_size, groups, datasets, max_pixels)


def export_generator(model_save_dir, export_dir, step="latest", version=None, overwrite=False, which="auto",
                     max_pixels=data.MAX_PIXELS):
    """Restore G at `step` and write a SavedModel to `export_dir/<version>` (default: the training step).

    `which` generator: 'auto' (the moving average when the checkpoint holds one, else G), 'ema' or 'raw'.
    `max_pixels`: the largest image (width x height, from its header) `translate_bytes` decodes.

    The SavedModel is written into a hidden temporary folder beside the target and renamed into place
    when complete, so TF Serving (which only loads integer-named folders) never sees half an export.
    """
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"--max_pixels must be a positive integer, got {max_pixels!r}")
    generator, config, restored_step = restore_generator(model_save_dir, step, which)
    version = restored_step if version is None else version
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"--version must be a non-negative integer (TF Serving's version folders), got {version!r}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --version with a new number or --overwrite")
    os.makedirs(export_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        serving.save(build_server(generator, config, max_pixels), os.path.join(tmp, "model"))
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=export_dir)
            os.replace(target, os.path.join(old, "model"))
            os.replace(os.path.join(tmp, "model"), target)
            shutil.rmtree(old)
        else:
            os.replace(os.path.join(tmp, "model"), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
