"""One configuration dataclass whose fields are the official `main.py` flags, with the same defaults."""

import argparse
import dataclasses
import json
import math
import os
import typing

from stargan_tf.files import write_atomic
from stargan_tf.shapes import check_discriminator_size, check_generator_size

DEFAULT_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
DATASETS = ("CelebA", "RaFD", "Both", "Demo")
ATTRIBUTE_DATASETS = ("CelebA", "Demo", "Both")  # the datasets with CelebA-layout attribute files
FOLDER_DATASETS = ("RaFD", "Both")  # the datasets with one folder per class
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")  # --distribution_strategy (stargan_tf.distribute)
PRECISIONS = ("auto", "off", "bf16", "fp16")  # --mixed_precision (stargan_tf.hardware)
TARGET_SAMPLING = ("permutation", "other")


CELEBA_CROP_SIZE = 178  # the official --celeba_crop_size: the width of CelebA's aligned faces


def _bool_or_auto(value):
    if value.lower() == "auto":
        return "auto"
    try:
        return _str2bool(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected true, false or auto, got {value!r}") from None


def _str2bool(value):
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_step(value):
    if value == "latest":
        return value
    try:
        step = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step number or 'latest', got {value!r}") from None
    if step < 0:
        raise argparse.ArgumentTypeError(f"expected a step number >= 0, got {step}")
    return step


def option(default, parse, help, flags=None, **argparse_options):
    """A config field that is also an option of train.py: its default, how its command-line text is read (`parse`),
    its --help text; `flags` (default --<name>) and other argparse options where they differ."""
    metadata = {"parse": parse, "help": help, "flags": flags, "argparse": argparse_options}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def recorded(default):
    """A config field that is not an option: a value a run records in config.json."""
    return dataclasses.field(default=default, metadata={"parse": None})


@dataclasses.dataclass(frozen=True)
class StarGANConfig:
    """Every option of training, testing and export; names and defaults follow yunjey/stargan's main.py. Each field
    carries its option's parser and --help text (`option`), from which `build_parser` makes train.py's options.

    A value: nothing writes it once made (`dataclasses.replace` makes another, as the solver does to record a run's
    seed and classes). The label widths `c_dim`/`c2_dim` are derived when it is made, from `selected_attrs` and
    `rafd_classes` (a width given that disagrees with them is an error).
    """

    # Model configuration.
    # official default 5; None follows len(selected_attrs)
    c_dim: int | None = option(None, int, "dimension of domain labels (1st dataset); default: follows --selected_attrs "
                               "(RaFD: the classes)")
    # official default 8; None follows the RaFD classes with --dataset Both
    c2_dim: int | None = option(None, int, "dimension of domain labels (2nd dataset); follows the classes of "
                                "--rafd_image_dir when omitted")
    celeba_crop_size: int = option(CELEBA_CROP_SIZE, int, "celeba crop size")
    rafd_crop_size: int = option(256, int, "rafd crop size")
    image_size: int = option(128, int, "image resolution")
    g_conv_dim: int = option(64, int, "number of conv filters in the first layer of G")
    d_conv_dim: int = option(64, int, "number of conv filters in the first layer of D")
    g_repeat_num: int = option(6, int, "number of residual blocks in G")
    d_repeat_num: int = option(6, int, "number of strided conv layers in D")
    lambda_cls: float = option(1.0, float, "weight for domain classification loss")
    lambda_rec: float = option(10.0, float, "weight for reconstruction loss")
    lambda_gp: float = option(10.0, float, "weight for gradient penalty")
    lambda_id: float = option(0.0, float, "weight for the identity loss |x - G(x, c_org)|_1 (0: off, as in the "
                              "official code)")
    # Training configuration.
    dataset: str = option("CelebA", str, "dataset", choices=DATASETS)
    batch_size: int = option(16, int, "batch size")
    num_iters: int = option(200000, int, "number of total iterations for training D")
    num_iters_decay: int = option(100000, int, "number of final iterations over which both learning rates fall "
                                  "linearly to 0")
    g_lr: float = option(0.0001, float, "g lr")
    d_lr: float = option(0.0001, float, "d lr")
    n_critic: int = option(2, int, "number of D updates per each G update (official: 5; default 2, see the README's "
                           "measurements)")
    beta1: float = option(0.5, float, "beta1")
    beta2: float = option(0.999, float, "beta2")
    # an int step, "latest", or None
    resume_iters: object | None = option(None, parse_step, "resume training from this step ('latest' for the newest "
                                         "checkpoint)")
    selected_attrs: list = option(DEFAULT_ATTRS, str, "selected attrs", flags=("--selected_attrs", "--list"), nargs="+")
    # Test configuration.
    # an int step or "latest"
    test_iters: object = option(200000, parse_step, "test model from this step ('latest' for the newest checkpoint)")
    # Miscellaneous.
    num_workers: int | None = option(None, int, "parallel image decoders (default: tuned by tf.data)")
    mode: str = option("train", str, "mode", choices=("train", "test"))
    use_tensorboard: bool = option(True, _str2bool, "use tensorboard")
    # Directories.
    celeba_image_dir: str = option("data/celeba/images", str, "celeba image dir")
    attr_path: str = option("data/celeba/list_attr_celeba.txt", str, "attr path")
    rafd_image_dir: str = option("data/RaFD/train", str, "rafd image dir")
    log_dir: str = option("stargan/logs", str, "log dir")
    model_save_dir: str = option("stargan/models", str, "model save dir")
    sample_dir: str = option("stargan/samples", str, "sample dir")
    result_dir: str = option("stargan/results", str, "result dir")
    # Step size.
    log_step: int = option(10, int, "log step")
    sample_step: int = option(1000, int, "sample step")
    model_save_step: int = option(10000, int, "model save step")
    lr_update_step: int = option(1000, int, "lr update step")
    eval_step: int = option(0, int, "every N steps, judge translations of a fixed held-out subset with classifiers "
                            "trained on the real training images and log target accuracy, preservation and "
                            "reconstruction to TensorBoard (0: off)")
    # Additions of this project.
    seed: int | None = option(None, int, "random seed for data order, flips, target labels and weights (default: drawn "
                              "and recorded)")
    test_size: int | None = option(None, int, "number of CelebA-layout images held out for test mode (default: 1999, "
                                   "or a tenth of a small set)")
    demo_dir: str = option("data/demo", str, "where --dataset Demo generates (or finds) its synthetic CelebA-layout "
                           "data")
    demo_images: int = option(2000, int, "number of images --dataset Demo generates")
    # the class folders of rafd_image_dir, recorded when training starts
    rafd_classes: list | None = recorded(None)
    g_ema_decay: float = option(0.999, float, "decay of the exponential moving average of G's weights (with a warm-up) "
                                "used for samples, test mode, export, translate and evaluation; in [0, 1), 0 turns it "
                                "off")
    target_sampling: str = option("permutation", str, "target labels in training: permutation (the batch's labels "
                                  "shuffled, official) or other (folder datasets: a class other than the source, "
                                  "uniformly; attributes stay permuted)", choices=TARGET_SAMPLING)
    eval_images: int = option(1000, int, "number of held-out images --eval_step translates (a fixed, seeded subset)")
    eval_dir: str | None = option(None, str, "folder datasets: held-out images for --eval_step, one folder per class "
                                  "(the training classes)")
    view_scale: int = option(0, int, "sample grids and test-mode results are saved enlarged this many times (nearest "
                             "neighbour) under a header row naming each column; 0: automatic (columns at least 96 "
                             "pixels wide), 1: the model's size")
    random_flip: bool = option(True, _str2bool, "flip training images left-right at random (the official default); "
                               "turn it off when a mirrored image belongs to another class or to none (digits, text, "
                               "signs, asymmetric objects)")
    skip_bad_images: bool = option(False, _str2bool, "a training image that cannot be decoded: false stops the run "
                                   "after saving a checkpoint and names the file; true skips it (named and counted) "
                                   "and trains on")
    overwrite_later_checkpoints: bool = option(False, _str2bool, "resuming from a step older than the newest "
                                               "checkpoint replaces the newer checkpoints as training reaches their "
                                               "steps: false refuses (naming them), true allows it")
    # Scale-out and speed.
    distribution_strategy: str = option("auto", str, "default (one device), mirrored (local GPUs, or --cpu_devices), "
                                        "multi_worker (TF_CONFIG); auto: mirrored when more than one GPU is visible",
                                        choices=STRATEGIES)
    cpu_devices: int = option(0, int, "split the CPU into N logical devices so that --distribution_strategy mirrored "
                              "runs without GPUs")
    collective_timeout: float | None = option(None, float, "seconds a multi-worker collective may wait before failing "
                                              "(a dead worker)")
    mixed_precision: str = option("auto", str, "off, bf16 or fp16 (with loss scaling); auto: fastest for the hardware "
                                  "found", choices=PRECISIONS)
    # XLA: True, False or auto (by hardware; None in older config.json files)
    jit_compile: object = option("auto", _bool_or_auto, "compile the train steps with XLA: true, false, or auto: on "
                                 "for GPUs and for float32 on CPUs, off for bfloat16 on CPUs (measured fastest; the "
                                 "choice and why are printed at the start)", nargs="?", const=True)

    def __post_init__(self):
        object.__setattr__(self, "c_dim", self._label_width("c_dim", self.c_dim, "RaFD"))
        object.__setattr__(self, "c2_dim", self._label_width("c2_dim", self.c2_dim, "Both"))

    def _label_width(self, option, given, folder_dataset):
        """The width of a label part: the selected attributes (c_dim of the attribute datasets) or the recorded
        class folders (c_dim of RaFD, c2_dim of Both); `given` when neither says, else checked against it."""
        if option == "c_dim" and self.dataset in ATTRIBUTE_DATASETS and self.selected_attrs is not None:
            if given is not None and given != len(self.selected_attrs):
                raise ValueError(f"--c_dim {given} does not match the {len(self.selected_attrs)} --selected_attrs "
                                 f"({' '.join(self.selected_attrs)}); omit --c_dim to follow --selected_attrs")
            return len(self.selected_attrs)
        if self.dataset == folder_dataset and self.rafd_classes:
            if given is not None and given != len(self.rafd_classes):
                raise ValueError(f"--{option} {given} does not match the {len(self.rafd_classes)} classes "
                                 f"({', '.join(self.rafd_classes)}); omit --{option} to follow the class folders")
            return len(self.rafd_classes)
        return given

    def validate(self):
        """Raise ValueError naming the option when a value cannot work; returns the config unchanged."""
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.mode not in ("train", "test"):
            raise ValueError(f"--mode must be train or test, got {self.mode!r}")
        if self.dataset in ATTRIBUTE_DATASETS:
            if not self.selected_attrs:
                raise ValueError("--selected_attrs needs at least one attribute name")
            if len(set(self.selected_attrs)) != len(self.selected_attrs):
                raise ValueError(f"--selected_attrs names an attribute twice: {' '.join(self.selected_attrs)}")
        positive = ("image_size", "batch_size", "num_iters", "n_critic", "g_conv_dim", "d_conv_dim",
                    "log_step", "sample_step", "model_save_step", "lr_update_step", "celeba_crop_size",
                    "rafd_crop_size", "demo_images", "eval_images")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        check_generator_size(self.image_size)
        check_discriminator_size(self.image_size, self.d_repeat_num)
        if self.g_repeat_num < 0:
            raise ValueError(f"--g_repeat_num must be 0 or more, got {self.g_repeat_num}")
        if self.view_scale < 0:
            raise ValueError(f"--view_scale must be 0 (automatic) or more, got {self.view_scale}")
        if self.eval_step < 0:
            raise ValueError(f"--eval_step must be 0 (off) or more, got {self.eval_step}")
        if self.num_iters_decay < 0:
            raise ValueError(f"--num_iters_decay must be 0 or more, got {self.num_iters_decay}")
        if self.distribution_strategy not in STRATEGIES:
            raise ValueError(f"--distribution_strategy must be one of {', '.join(STRATEGIES)}, got "
                             f"{self.distribution_strategy!r}")
        if self.target_sampling not in TARGET_SAMPLING:
            raise ValueError(f"--target_sampling must be one of {', '.join(TARGET_SAMPLING)}, got "
                             f"{self.target_sampling!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"--mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}")
        if self.jit_compile not in (True, False, "auto", None) or type(self.jit_compile) not in (bool, str, type(None)):
            raise ValueError(f"--jit_compile must be true, false or auto, got {self.jit_compile!r}")
        if self.cpu_devices < 0:
            raise ValueError(f"--cpu_devices must be 0 or more, got {self.cpu_devices}")
        if not 0.0 <= self.g_ema_decay < 1.0:
            raise ValueError(f"--g_ema_decay must lie in [0, 1) (0 turns the average off), got {self.g_ema_decay}")
        for name in ("lambda_cls", "lambda_rec", "lambda_gp", "lambda_id"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"--{name} must be a finite number >= 0, got {getattr(self, name)}")
        for name in ("g_lr", "d_lr"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be a finite number > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.collective_timeout is not None and not self.collective_timeout > 0:
            raise ValueError(f"--collective_timeout must be a number of seconds > 0, got {self.collective_timeout}")
        if self.test_size is not None and self.test_size < 0:
            raise ValueError(f"--test_size must be 0 or more, got {self.test_size}")
        return self

    def crop_size(self, dataset):
        """The centre crop of `dataset`'s images: `rafd_crop_size` for the folder dataset (RaFD), else
        `celeba_crop_size` (CelebA, Demo, and a joint model's own name, Both)."""
        return self.rafd_crop_size if dataset == "RaFD" else self.celeba_crop_size

    def model_dict(self):
        """The options needed to rebuild the networks and their labels (stored beside the checkpoints)."""
        keys = ("dataset", "c_dim", "c2_dim", "image_size", "g_conv_dim", "d_conv_dim", "g_repeat_num",
                "d_repeat_num", "selected_attrs", "rafd_classes", "celeba_crop_size", "rafd_crop_size")
        return {k: getattr(self, k) for k in keys}

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values, source="config"):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown option(s) {', '.join(unknown)}")
        return cls(**values)


CONFIG_FILE = "config.json"


def save_config(config, model_save_dir):
    """Write config.json beside the checkpoints atomically (temporary file, then rename)."""
    return write_atomic(os.path.join(model_save_dir, CONFIG_FILE), config.to_json() + "\n")


def read_config_values(model_save_dir):
    """The options config.json in `model_save_dir` holds, as a dict straight from its JSON (types unchecked)."""
    path = os.path.join(model_save_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --model_save_dir must be a directory written by train.py (or stargan_tf.convert)"
        )
    with open(path) as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of options ({{\"image_size\": 128, ...}}), got "
                         f"{describe(values)}")
    return values


def describe(value):
    """A JSON value with its Python type, e.g. `"32" (str)`, for messages where 32 and "32" must not look alike."""
    return f"{json.dumps(value)} ({type(value).__name__})"


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list of strings"}


def _type_problem(field, value):
    """What is wrong with the type of `value` for `field` (JSON as config.json holds it), or None."""
    if field.name in ("resume_iters", "test_iters"):
        if (value is None and field.name == "resume_iters") or value == "latest" or (
                type(value) is int and value >= 0):
            return None
        return "must be a step number >= 0 or \"latest\"" + (" or null" if field.name == "resume_iters" else "")
    allowed = typing.get_args(field.type) or (field.type,)
    kinds = [t for t in allowed if t in _KINDS]
    if len(kinds) != 1:  # a field of several types (jit_compile, say): validate() checks its values
        return None
    kind = kinds[0]
    if value is None:
        return None if type(None) in allowed else f"must be {_KINDS[kind]}"
    ok = {int: type(value) is int, float: type(value) in (int, float), bool: type(value) is bool,
          str: type(value) is str, list: type(value) is list and all(type(v) is str for v in value)}[kind]
    return None if ok else f"must be {_KINDS[kind]}" + (" or null" if type(None) in allowed else "")


def load_config(model_save_dir):
    """Read the config.json that training stored in `model_save_dir`; a ValueError naming it and the key when a
    value has the wrong type or cannot work."""
    path = os.path.join(model_save_dir, CONFIG_FILE)
    values = read_config_values(model_save_dir)
    fields = {f.name: f for f in dataclasses.fields(StarGANConfig)}
    for key, value in values.items():
        problem = _type_problem(fields[key], value) if key in fields else None
        if problem:
            raise ValueError(f"{path}: \"{key}\" {problem}, got {describe(value)}")
    try:
        return StarGANConfig.from_dict(values, source=path).validate()
    except ValueError as e:
        message = str(e)
        raise ValueError(message if message.startswith(path) else f"{path}: {message}") from None


def build_parser(description="Train or test StarGAN."):
    """An argparse parser with one option per config field (as each field's `option` says), accepting the official
    command lines."""
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(StarGANConfig):
        meta = field.metadata
        if meta["parse"] is None:
            continue
        default = list(field.default_factory()) if field.default is dataclasses.MISSING else field.default
        parser.add_argument(*(meta["flags"] or [f"--{field.name}"]), default=default, type=meta["parse"],
                            help=meta["help"], **meta["argparse"])
    return parser


def parse_config(argv=None):
    """Parse a command line into a validated config; option errors exit with argparse's message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return StarGANConfig(**vars(args)).validate()
    except ValueError as e:
        parser.error(str(e))
