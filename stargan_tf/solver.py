"""A train.py run: the config it records, its data, its checks (resume, stored config, writable folders) and test
mode; training itself is `StarGAN.fit` with the callbacks that write checkpoints, samples, evaluations and logs."""

import dataclasses
import os
import random
import tempfile

import keras
import tensorflow as tf

from stargan_tf import data, distribute, domains, hardware, images
from stargan_tf.callbacks import Evaluate, ProgressLog, SampleGrid, StarGANCheckpoint, first_images, summary_writer
from stargan_tf.checkpoints import (
    CHECKPOINT_NAME,
    available_steps,
    check_config_matches,
    checkpoint_path,
    checkpoint_step,
    has_ema,
    load_generator_weights,
    loss_scaled,
    problem,
    reading,
)
from stargan_tf.config import (
    ATTRIBUTE_DATASETS,
    CONFIG_FILE,
    describe,
    load_config,
    read_config_values,
)
from stargan_tf.demo_data import attribute_files
from stargan_tf.networks import generator_for
from stargan_tf.stargan import StarGAN
from stargan_tf.streams import TrainingStreams, read_sources

ADVICE = "continue with --resume_iters latest (and the same options)"


def run_seed(config):
    """The seed of this run: a resumed run continues with the seed config.json recorded (an explicit --seed
    that differs is an error: it would change the data stream mid-run), a new run uses --seed or draws one.
    A resumed run's config.json is checked against `config` first (`check_stored_config`)."""
    path = os.path.join(config.model_save_dir, CONFIG_FILE)
    if config.mode == "train" and config.resume_iters is not None and os.path.exists(path):
        stored = check_stored_config(config).seed
        if stored is not None:
            if config.seed is not None and config.seed != stored:
                raise ValueError(f"--seed {config.seed} differs from the seed {stored} recorded in {path}; a resumed "
                                 "run continues the recorded random stream: omit --seed (or pass the recorded one)")
            return stored
    return random.SystemRandom().randrange(2**31) if config.seed is None else config.seed


def check_stored_config(config):
    """The config.json of `config.model_save_dir` (None without one), refused when its model options differ from
    `config`'s: resuming or testing needs the architecture and labels the checkpoints were trained with."""
    path = os.path.join(config.model_save_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    current = config.model_dict()
    raw = read_config_values(config.model_save_dir)
    diff = _differences({k: raw[k] for k in current if raw.get(k) is not None}, current)
    stored = None
    if not diff:
        stored = load_config(config.model_save_dir)
        diff = _differences(stored.model_dict(), current, missing=set(current) - set(raw))
    if diff:
        raise ValueError(f"{path} was written by a different configuration: {'; '.join(diff)}")
    return stored


def _differences(stored, current, missing=()):
    """`--key A (stored) vs B (given)` for each model option that differs (with the types when they differ: 32 and
    "32" must not look alike); `--key missing (read as A) vs B (given)` for the `missing` keys, absent from
    config.json and read as their defaults."""
    found = []
    for key, value in stored.items():
        given = current[key]
        if key == "dataset" or (type(value) is type(given) and value == given):
            continue
        if key in missing:
            found.append(f"--{key} missing (read as {value}) vs {given} (given)")
        elif type(value) is type(given) or value is None or given is None:
            found.append(f"--{key} {value} (stored) vs {given} (given)")
        else:
            found.append(f"--{key} {describe(value)[:-1]}, stored) vs {describe(given)[:-1]}, given)")
    return found


def check_writable(folders):
    """Create each (option, folder) and write a probe file into it, so an unusable folder fails before the
    first step instead of at the first save."""
    for option, folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as e:
            raise ValueError(f"{option} {folder}: cannot write there ({e.strerror or e})") from None


def prepare_run(config):
    """(the run's config, its DatasetSources): `config` with what the run records in config.json filled in, the
    seed, the class folders and (Demo) the generated data files, and validated; the dataset files read."""
    if config.dataset in ATTRIBUTE_DATASETS:
        image_dir, attr_path = attribute_files(config)
        config = dataclasses.replace(config, celeba_image_dir=image_dir, attr_path=attr_path)
    sources, classes = read_sources(config)
    run = dataclasses.replace(config, rafd_classes=classes or config.rafd_classes)
    return dataclasses.replace(run, seed=run_seed(run)).validate(), sources


class Solver:
    """Trains and tests StarGAN on CelebA-layout data, a folder-per-class dataset, or both jointly."""

    def __init__(self, config, strategy=None):
        """Builds what the mode needs, the StarGAN model (G, D and their optimizers) to train, G alone to test, for
        the run `prepare_run(config)` describes; `config` itself is left as it was."""
        self.config, self.sources = prepare_run(config)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.layout = domains.layout_for(self.config)
        keras.utils.set_random_seed(self.config.seed)
        if self.config.mode == "train":
            with self.strategy.scope():
                self.model = StarGAN(self.config)
                self.model.compile()
            self.model.log_every, self.model.advice = self.config.log_step, ADVICE
            self.trainer = self.model.trainer
            self.G, self.D = self.trainer.G, self.trainer.D
            self.ckpt = self.trainer.checkpoint()
            self.sampler = self.trainer.sampler
        else:
            self.model = self.trainer = None
            self.sampler = generator_for(self.config, self.layout)
        self._translate = tf.function(self._generate, autograph=False)
        self.skipped_images = []

    # ------------------------------------------------------------------ helpers
    def _generate(self, inputs, training=False):
        x, c = inputs
        return self.sampler([x, c], training=False)

    def print_network(self):
        for model, name in ((self.G, "G"), (self.D, "D")):
            print(f"{name} ({model.name}): {len(model.layers)} layers")
            print(f"The number of parameters: {model.count_params()}")

    def _check_checkpoint(self, path):
        """Refuse the checkpoint at `path` when the stored (or given) sizes disagree with its variable shapes."""
        stored = os.path.join(self.config.model_save_dir, CONFIG_FILE)
        check_config_matches(self.config, path, stored if os.path.exists(stored) else None)

    def translate_grid(self, dataset, x, c_org_part):
        """Input column, then one column per domain of every dataset (the official `create_labels` targets), under a
        header row naming them, enlarged by --view_scale."""
        columns = [x]
        for c_trg in self.layout.targets(dataset, c_org_part):
            columns.append(self._translate([tf.convert_to_tensor(x), tf.convert_to_tensor(c_trg)]).numpy())
        return images.labelled(images.grid(columns), ["input", *self.layout.target_names()],
                               images.view_scale_for(self.config.image_size, self.config.view_scale))

    # ------------------------------------------------------------------ train
    def train(self):
        """Train to `num_iters` with `StarGAN.fit`; returns the last step. Holds `model_save_dir`'s lock throughout;
        SIGINT or SIGTERM stop it after the running iteration with a checkpoint (TrainingStopped)."""
        cfg = self.config
        streams = TrainingStreams(cfg, self.layout, self.sources, self.strategy)  # checks the batch size first
        chief = distribute.is_chief(self.strategy)
        if chief:
            check_writable(self._output_folders())
        saver = StarGANCheckpoint(cfg.model_save_dir, cfg.model_save_step, option="--model_save_dir", verbose=True)
        try:
            if chief:
                saver.acquire()
            streams.start_step = start = self._start()
            callbacks = self._callbacks(saver, chief)
            print("Start training...")
            try:
                if start < cfg.num_iters:
                    self.model.fit(streams, epochs=1, steps_per_epoch=cfg.num_iters - start, verbose=0,
                                   callbacks=callbacks)
            finally:
                self.skipped_images = streams.skipped
            if self.skipped_images:
                print(f"Skipped {len(self.skipped_images)} training image(s) that cannot be decoded: "
                      + ", ".join(self.skipped_images))
        finally:
            saver.release()
        return int(self.trainer.step.numpy())

    def _output_folders(self):
        cfg = self.config
        folders = [("--model_save_dir", cfg.model_save_dir), ("--sample_dir", cfg.sample_dir)]
        return folders + ([("--log_dir", cfg.log_dir)] if cfg.use_tensorboard else [])

    def _start(self):
        """Say what trains on what, refuse what must not be resumed, restore the resumed checkpoint; the first step."""
        cfg = self.config
        for source in self.sources:
            print(f"{source.name}: training on {len(source.train[0])} images"
                  + (f", {len(source.test[0])} held out for test mode." if source.name == "CelebA" else "."))
        self.print_network()
        print(f"Strategy: {type(self.strategy).__name__} with {self.strategy.num_replicas_in_sync} replica(s); "
              + hardware.describe(cfg.mixed_precision, cfg.jit_compile, cfg.num_iters))
        existing = available_steps(cfg.model_save_dir)
        if cfg.resume_iters is None and existing:
            raise ValueError(f"--model_save_dir {cfg.model_save_dir} already holds checkpoints (steps "
                             f"{', '.join(map(str, existing))}); continue with --resume_iters latest, or choose "
                             "another --model_save_dir so that they are not overwritten")
        if cfg.resume_iters is None:
            return 0
        path = checkpoint_path(cfg.model_save_dir, cfg.resume_iters)  # config.json was checked by prepare_run
        self._check_checkpoint(path)
        self._check_later_checkpoints(existing, checkpoint_step(path))
        self._check_precision(path)
        print(f"Loading the trained models from {path}...")
        with reading(path):
            if self.trainer.G_ema is not None and not has_ema(path):
                self.trainer.checkpoint(with_ema=False).restore(path).assert_existing_objects_matched()
                self.trainer.reset_ema()
                print(f"{path} holds no moving average of G: it starts from the restored G")
            else:
                self.ckpt.restore(path).expect_partial().assert_existing_objects_matched()
        return int(self.trainer.step.numpy())

    def _callbacks(self, saver, chief):
        """The periodic jobs of the run, in the order they run at a step: progress line and TensorBoard scalars,
        sample grid, evaluation, checkpoint."""
        cfg = self.config
        writer = summary_writer(cfg.log_dir) if cfg.use_tensorboard and chief else None
        samples = {}
        for source in self.sources:  # the first test images of each dataset (training images without a test split)
            paths, labels = source.test if len(source.test[0]) else source.train
            samples[source.name] = first_images(paths, labels, source.crop_size, cfg.image_size, cfg.batch_size)
        callbacks = [ProgressLog(cfg.num_iters, cfg.log_step, writer, option="--log_dir"),
                     SampleGrid(cfg.sample_dir, samples, cfg.sample_step, writer, option="--sample_dir",
                                log_option="--log_dir", verbose=True,
                                view_scale=images.view_scale_for(cfg.image_size, cfg.view_scale))]
        if cfg.eval_step and chief:
            judges = os.path.join(cfg.model_save_dir, "judges")
            callbacks.append(Evaluate(self._held_out_splits(), cfg.eval_step, judges, cfg.eval_images, writer=writer,
                                      option="--log_dir"))
        return callbacks + [saver]

    def _held_out_splits(self):
        """--eval_step's {dataset: (training files, held-out files)}, refused when a dataset has no held-out images."""
        cfg, splits = self.config, {}
        for source in self.sources:
            if source.name == "RaFD" and not cfg.eval_dir:
                raise ValueError("--eval_step needs held-out images of the folder dataset: pass --eval_dir (one "
                                 "folder per class, the classes of --rafd_image_dir)")
            if not len(source.test[0]):
                raise ValueError(f"--eval_step needs held-out images, but the {source.name} test split is empty: "
                                 "pass --test_size 1 or more")
            splits[source.name] = (source.train, source.test)
        return splits

    def _check_later_checkpoints(self, existing, step):
        """Refuse to resume from `step` when readable checkpoints of later steps exist (training would overwrite them
        as it reaches their steps), unless --overwrite_later_checkpoints says so."""
        cfg = self.config
        later = [s for s in existing if s > step
                 and problem(os.path.join(cfg.model_save_dir, f"{CHECKPOINT_NAME}-{s}")) is None]
        if later and not cfg.overwrite_later_checkpoints:
            raise ValueError(f"--resume_iters {cfg.resume_iters} continues from step {step}, but --model_save_dir "
                             f"{cfg.model_save_dir} holds later checkpoints (steps {', '.join(map(str, later))}) that "
                             "this run would overwrite. To keep them, copy config.json and the "
                             f"{CHECKPOINT_NAME}-{step}.* files into a new --model_save_dir and resume there (in this "
                             "folder a later --resume_iters latest would pick up those newer checkpoints, not this "
                             "run's); or pass --overwrite_later_checkpoints True to replace them")

    def _check_precision(self, path):
        """Refuse, saying what differs and how to resume, a checkpoint whose loss-scale state (fp16's) this run's
        precision does not have, or the reverse."""
        stored_fp16, precision = loss_scaled(path), self.trainer.precision
        if stored_fp16 == (precision == "fp16"):
            return
        if stored_fp16:
            raise ValueError(f"{path} was trained with --mixed_precision fp16: its optimizers hold fp16's loss-scale "
                             f"state, which this run (precision {precision}) has none of. The checkpoint is fine: "
                             "resume with --mixed_precision fp16")
        stored = load_config(self.config.model_save_dir).mixed_precision
        stored = stored if stored in ("off", "bf16") else "off (or bf16)"
        raise ValueError(f"{path} was trained without fp16 (--mixed_precision {stored}): its optimizers hold no "
                         "loss-scale state, which this run's fp16 needs. The checkpoint is fine: resume with "
                         f"--mixed_precision {stored}")

    # ------------------------------------------------------------------ test
    def test(self):
        cfg = self.config
        check_stored_config(cfg)
        path = checkpoint_path(cfg.model_save_dir, cfg.test_iters)
        self._check_checkpoint(path)
        print(f"Loading the trained generator from {path}...")
        load_generator_weights(self.sampler, path)
        written = []
        for source in self.sources:
            paths, labels = source.test
            if not len(paths):
                raise ValueError(f"the {source.name} test split is empty: pass --test_size 1 or more")
            prefix = f"{source.name}-" if self.layout.has_mask else ""
            batches = data.eval_dataset(paths, labels, source.crop_size, cfg.image_size, cfg.batch_size,
                                        cfg.num_workers)
            for i, (x, c) in enumerate(batches):
                result = self.translate_grid(source.name, x.numpy(), c.numpy())
                written.append(images.save_png(os.path.join(cfg.result_dir, f"{prefix}{i + 1}-images.png"), result))
                print(f"Saved real and fake images into {written[-1]}")
        return written
