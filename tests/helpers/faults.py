"""Faults for the fault tests: a full disk under a folder, class folders of JPEGs, a truncated training image."""

import errno
import os

from PIL import Image

from stargan_tf import data, files


def full_disk(monkeypatch, folder):
    """Make every write through `stargan_tf.files` under `folder` fail with ENOSPC once the file exists, as on a full
    disk (the file is created, its bytes are not)."""
    real_open, folder = open, os.path.abspath(folder)

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, payload):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if "w" in mode and os.path.abspath(path).startswith(folder + os.sep) else f

    monkeypatch.setattr(files, "open", fake_open, raising=False)


def class_folders(root, per_class=6):
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        os.makedirs(root / name)
        for i in range(per_class):
            Image.new("RGB", (40, 40), colour).save(root / name / f"{i}.jpg")


def truncate_a_file_of_batch(config, batch_index):
    """Truncate a JPEG that training reads in batch `batch_index` (not one the sample grid reads first)."""
    paths, _, _ = data.read_class_folders(config.rafd_image_dir)
    seed = config.seed + 104729 * 0
    before = {p for b in range(batch_index) for p in data.batch_paths(paths, seed, config.batch_size, b)}
    victim = next(p for p in data.batch_paths(paths, seed, config.batch_size, batch_index)
                  if p not in before and p not in paths[: config.batch_size])
    payload = open(victim, "rb").read()
    open(victim, "wb").write(payload[: len(payload) // 2])
    return victim
