"""Writing a file atomically: a crash or a full disk never leaves half a file under the real name.

A low module with no imports from stargan_tf (and none of TensorFlow, NumPy or PIL), so config.py may use it.
"""

import os


def write_atomic(path, payload):
    """Write `payload` (bytes, or str as UTF-8) to `path` via `path.tmp` and a rename; returns `path`.

    Creates the parent folder when missing.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(payload)
    os.replace(tmp, path)
    return path
