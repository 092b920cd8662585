"""Writing a file atomically: a crash or a full disk never leaves half a file under the real name.

A low module with no imports from stargan_tf (and none of TensorFlow, NumPy or PIL), so config.py may use it.
"""

import contextlib
import os


def write_atomic(path, payload):
    """Write `payload` (bytes, or str as UTF-8) to `path` via `path.tmp` and a rename; returns `path`.

    Creates the parent folder when missing; when the write fails (a full disk) no `.tmp` is left.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:  # a full disk, say: leave no empty or partial `.tmp` behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path

