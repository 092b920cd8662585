"""Choosing a tf.distribute strategy, and who writes files when several workers train together.

`default` runs on one device; `mirrored` replicates over the local GPUs (or over `--cpu_devices` logical
CPUs, so the path runs and is tested without GPUs); `multi_worker` is MultiWorkerMirroredStrategy configured
from the standard TF_CONFIG environment variable. Following TensorFlow's multi-worker guide, every worker
runs the same saves, but only the chief writes to the real folders; the others write into temporary
folders that are deleted afterwards.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from stargan_tf.config import STRATEGIES


def split_cpu(num_devices):
    """Split the host CPU into `num_devices` logical devices; must run before TensorFlow initialises."""
    if num_devices and num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(name="auto", collective_timeout=None):
    """The strategy `name` ('auto': mirrored when more than one GPU is visible, else default)."""
    if name not in STRATEGIES:
        raise ValueError(f"--distribution_strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if not gpus:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if not tf_config():
        raise ValueError("--distribution_strategy multi_worker needs the TF_CONFIG environment variable "
                         '(for example {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}})')
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief(strategy):
    """True on the worker that writes checkpoints, samples and TensorBoard (task 0, or a lone process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def task_name(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}_{resolver.task_id}" if resolver is not None and resolver.task_type else "local"


class WriteLocations:
    """Folders to write into: the real ones on the chief, throw-away temporary ones on other workers."""

    def __init__(self, strategy):
        self.chief = is_chief(strategy)
        self._tmp = None if self.chief else tempfile.mkdtemp(prefix=f"stargan-{task_name(strategy)}-")

    def path(self, folder):
        if self.chief:
            return folder
        target = os.path.join(self._tmp, os.path.basename(os.path.normpath(folder)) or "out")
        os.makedirs(target, exist_ok=True)
        return target

    def cleanup(self):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def tf_config():
    """TF_CONFIG parsed, or an empty dict."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos})") from None


def num_workers(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(tasks) for kind, tasks in spec.items() if kind in ("chief", "worker")) or 1


class StopVote:
    """The reason to stop (one of `reasons`) any worker gave (0: none), agreed by all: a collective on multi-worker
    runs, so that every worker calls it at the same iteration and all stop (and save) at the same step.

    A reason is anything comparable with `==`: the signals SIGINT and SIGTERM, and the solver's `WRITE_FAILED`, which
    the chief gives when a sample, log or evaluation write failed (a full disk), so that every worker saves the step
    before the chief reports the folder. Each worker passes its own reason, or 0 for none; when workers give
    different reasons, the first of them in `reasons` wins.
    """

    def __init__(self, strategy, reasons):
        self.reasons = tuple(reasons)
        self._collective = num_workers(strategy) > 1
        if self._collective:
            self._sum = tf.function(lambda flags: strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(lambda f: f, args=(flags,)), axis=None), autograph=False)

    def __call__(self, reason):
        if not self._collective:
            return reason
        counts = self._sum(tf.constant([float(reason == r) for r in self.reasons]))
        return next((r for r, n in zip(self.reasons, counts.numpy(), strict=True) if n > 0), 0)
