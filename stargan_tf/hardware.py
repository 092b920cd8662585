"""Defaults that are fastest on the hardware found: mixed precision and XLA (measurements in the README).

  GPU, compute capability >= 8.0 (A100, H100, RTX 30xx+): bfloat16, XLA
  older GPU with tensor cores (V100, T4, RTX 20xx):         float16 with loss scaling, XLA
  CPU with AVX-512 BF16 or AMX:                             bfloat16, no XLA (XLA was 2-4x slower on CPU)
  other CPUs:                                               float32, no XLA
"""

import tensorflow as tf

from stargan_tf.config import PRECISIONS

POLICIES = {"off": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capability():
    """The first GPU's (major, minor) compute capability, or None without a GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))


def resolve_precision(choice="auto"):
    """'off', 'bf16' or 'fp16' for `choice`; 'auto' picks by hardware as in the module docstring."""
    if choice not in PRECISIONS:
        raise ValueError(f"--mixed_precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice
    capability = gpu_compute_capability()
    if capability is not None:
        return "bf16" if capability >= (8, 0) else "fp16"
    return "bf16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "off"


def resolve_jit(choice=None):
    """XLA on GPUs by default; on CPUs it measured 2-4x slower here."""
    return bool(choice) if choice is not None else gpu_compute_capability() is not None
