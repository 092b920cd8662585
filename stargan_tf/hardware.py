"""Defaults that are fastest on the hardware found: mixed precision and XLA (measurements in the README).

  GPU, compute capability >= 8.0 (A100, H100, RTX 30xx+): bfloat16, XLA
  older GPU with tensor cores (V100, T4, RTX 20xx):         float16 with loss scaling, XLA
  CPU with AVX-512 BF16 or AMX:                             bfloat16, no XLA (XLA's bfloat16 kernels were slower)
  CPU with AVX-512 but no BF16:                             float32, no XLA (oneDNN's AVX-512 kernels were faster)
  other CPUs (AVX2 only):                                   float32, XLA for runs of XLA_MIN_ITERS iterations or more
                                                            (faster per step there, but compiling the steps takes
                                                            half a minute or more)

`describe` says which was chosen and why, for the line training prints at its start.
"""

import tensorflow as tf

from stargan_tf.config import PRECISIONS

POLICIES = {"off": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 matrix instructions
XLA_MIN_ITERS = 1000  # shorter float32 CPU runs would spend more on compiling than XLA saves them


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


def _precision_and_reason(choice):
    if choice not in PRECISIONS:
        raise ValueError(f"--mixed_precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice, "as given"
    capability = gpu_compute_capability()
    if capability is not None:
        if capability >= (8, 0):
            return "bf16", f"auto: a GPU of compute capability {capability[0]}.{capability[1]}"
        return "fp16", f"auto: a GPU of compute capability {capability[0]}.{capability[1]}, below 8.0"
    found = [flag for flag in BF16_FLAGS if flag in cpu_flags()]
    if found:
        return "bf16", f"auto: this CPU has {found[0]}"
    return "off", "auto: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so float32"


def resolve_precision(choice="auto"):
    """'off', 'bf16' or 'fp16' for `choice`; 'auto' picks by hardware as in the module docstring."""
    return _precision_and_reason(choice)[0]


def _jit_and_reason(choice, precision, num_iters):
    if choice is not None and choice != "auto":
        return bool(choice), "as given"
    if gpu_compute_capability() is not None:
        return True, "auto: on for GPUs"
    if precision != "off":
        return False, f"auto: {precision} on a CPU, where XLA was slower"
    if "avx512f" in cpu_flags():
        return False, "auto: float32 on a CPU with AVX-512, where oneDNN's kernels were faster than XLA's"
    if num_iters < XLA_MIN_ITERS:
        return False, f"auto: a run of {num_iters} iterations, too short to repay XLA's compilation"
    return True, "auto: float32 on a CPU without AVX-512, where XLA's kernels were faster"


def resolve_jit(choice="auto", precision="off", num_iters=XLA_MIN_ITERS):
    """Whether to compile the train steps with XLA: `choice` True/False, or 'auto' (None too, as older config.json
    files hold) by hardware, the resolved `precision` and the run's length as in the module docstring."""
    return _jit_and_reason(choice, precision, num_iters)[0]


def describe(precision_choice, jit_choice, num_iters):
    """`precision bf16 (auto: this CPU has amx_bf16); XLA off (auto: ...)`: the speed settings and why."""
    precision, why_precision = _precision_and_reason(precision_choice)
    jit, why_jit = _jit_and_reason(jit_choice, precision, num_iters)
    return f"precision {precision} ({why_precision}); XLA {'on' if jit else 'off'} ({why_jit})"
