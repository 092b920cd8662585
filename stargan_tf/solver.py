"""The training and test loops around the train steps: data, logging, samples, checkpoints, TensorBoard."""

import contextlib
import dataclasses
import datetime
import os
import random
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data, distribute, domains, hardware, images, measures
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
    remove_temp_folders,
)
from stargan_tf.cli import first_line, write_failure
from stargan_tf.config import (
    ATTRIBUTE_DATASETS,
    CONFIG_FILE,
    FOLDER_DATASETS,
    describe,
    load_config,
    read_config_values,
    save_config,
)
from stargan_tf.demo_data import attribute_files
from stargan_tf.lock import FolderLock
from stargan_tf.networks import generator_for
from stargan_tf.stopping import SIGNALS, StopSignals, TrainingStopped, signal_name
from stargan_tf.training import NonFiniteLoss, StarGANTrainer, TrainingError

WRITE_FAILED = "write failed"  # the stop reason a chief votes for when a sample, log or evaluation write failed


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def progress_line(step, total, start_step, elapsed, terms):
    """`[#####---------------] 1200/200000 (0.6%) | 1.52 it/s | elapsed 0:13:10 | ETA 1 day, 12:22:10 | ...`."""
    done = step - start_step
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = format_duration((total - step) / rate) if rate > 0 else "?"
    filled = int(20 * step / total)
    bar = "#" * filled + "-" * (20 - filled)
    line = (f"[{bar}] {step}/{total} ({100 * step / total:.1f}%) | {rate:.2f} it/s | "
            f"elapsed {format_duration(elapsed)} | ETA {eta}")
    return line + "".join(f" | {k}: {v:.4f}" for k, v in terms.items())


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


def stopped_without_saving(error, last_checkpoint):
    """The TrainingError train.py reports for a NonFiniteLoss: which terms at which step, and what is kept."""
    kept = f"the last checkpoint, {last_checkpoint}, holds finite weights" if last_checkpoint else "nothing was saved"
    return TrainingError(f"{error.what}; training stopped without saving ({kept}). {error.ADVICE}")


def prepare_run(config):
    """(the run's config, its DatasetSources): `config` with what the run records in config.json filled in, the
    seed, the class folders and (Demo) the generated data files, and validated; the dataset files read."""
    if config.dataset in ATTRIBUTE_DATASETS:
        image_dir, attr_path = attribute_files(config)
        config = dataclasses.replace(config, celeba_image_dir=image_dir, attr_path=attr_path)
    sources, classes = read_sources(config)
    run = dataclasses.replace(config, rafd_classes=classes or config.rafd_classes)
    return dataclasses.replace(run, seed=run_seed(run)).validate(), sources


def read_sources(config):
    """The DatasetSources `config` trains or tests on, and the class folders of its folder dataset (None without
    one); the classes must be those `config.rafd_classes` records, when it records any."""
    sources, classes = [], None
    if config.dataset in ATTRIBUTE_DATASETS:
        train, test = data.celeba_files(config.celeba_image_dir, config.attr_path, config.selected_attrs,
                                        config.test_size)
        sources.append(DatasetSource("CelebA", train, test, config.crop_size("CelebA")))
    if config.dataset in FOLDER_DATASETS:
        paths, labels, classes = data.read_class_folders(config.rafd_image_dir)
        if config.rafd_classes and list(config.rafd_classes) != classes:
            raise data.DataError(f"--rafd_image_dir {config.rafd_image_dir} has classes {', '.join(classes)}, "
                                 f"but the model was trained on {', '.join(config.rafd_classes)}")
        # The folder given is the data of the mode: the training folder to train, the test folder to test.
        held_out = (paths, labels)
        if config.eval_dir and config.mode == "train":
            eval_paths, eval_labels, eval_classes = data.read_class_folders(config.eval_dir, "--eval_dir")
            if eval_classes != classes:
                raise data.DataError(f"--eval_dir {config.eval_dir} has classes {', '.join(eval_classes)}, but "
                                     f"--rafd_image_dir has {', '.join(classes)}")
            held_out = (eval_paths, eval_labels)
        sources.append(DatasetSource("RaFD", (paths, labels), held_out, config.crop_size("RaFD")))
    return sources, classes


class DatasetSource:
    """One dataset's files: training (paths, labels) and test (paths, labels), its crop size and its name."""

    def __init__(self, name, train, test, crop_size):
        self.name, self.train, self.test, self.crop_size = name, train, test, crop_size


class Solver:
    """Trains and tests StarGAN on CelebA-layout data, a folder-per-class dataset, or both jointly."""

    def __init__(self, config, strategy=None):
        """Builds what the mode needs, G, D and their optimizers to train, G alone to test, for the run
        `prepare_run(config)` describes; `config` itself is left as it was."""
        self.config, self.sources = prepare_run(config)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.locations = distribute.WriteLocations(self.strategy)
        self.layout = domains.layout_for(self.config)
        keras.utils.set_random_seed(self.config.seed)
        if self.config.mode == "train":
            self.trainer = StarGANTrainer.from_config(self.config, self.layout, self.strategy)
            self.G, self.D = self.trainer.G, self.trainer.D
            self.ckpt = self.trainer.checkpoint()
            self.sampler = self.trainer.sampler
        else:
            self.trainer = None
            self.sampler = generator_for(self.config, self.layout)
        self._translate = tf.function(self._generate)
        self._streams = {}

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
        """Input column, then one column per domain of every dataset (the official `create_labels` targets)."""
        columns = [x]
        for c_trg in self.layout.targets(dataset, c_org_part):
            columns.append(self._translate([tf.convert_to_tensor(x), tf.convert_to_tensor(c_trg)]).numpy())
        return images.grid(columns)

    def _stream_seed(self, source):
        return self.config.seed + 104729 * self.layout.datasets.index(source.name)

    def _input(self, source, start_step):
        """The distributed stream of `source`'s training batches from `start_step` (recorded in `_streams`
        with its pipeline layout, to find the files of a batch that fails to decode)."""
        cfg = self.config
        replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % replicas:
            raise ValueError(f"--batch_size {cfg.batch_size} must divide evenly over {replicas} replicas")
        paths, labels = source.train
        layout, name = self.layout, source.name

        def input_fn(ctx):
            shard = (ctx.num_input_pipelines, ctx.input_pipeline_id)
            batch = ctx.get_per_replica_batch_size(cfg.batch_size)
            self._streams[name] = (start_step, shard, batch, replicas // ctx.num_input_pipelines)
            return data.train_dataset(
                paths, labels, source.crop_size, cfg.image_size, batch, seed=self._stream_seed(source),
                num_parallel_calls=cfg.num_workers, shard=shard, start_batch=start_step,
                labels_to_model=lambda part: layout.encode(name, part), random_flip=cfg.random_flip,
                other_class=cfg.target_sampling == "other" and layout.spec(name).one_hot,
            )

        return iter(self.strategy.distribute_datasets_from_function(input_fn))

    def _batch_files(self, source, step):
        """The training files this worker reads for `step` of `source` (all its local replicas)."""
        first, shard, batch, local = self._streams[source.name]
        index = first + (step - first) * local
        return [p for i in range(index, index + local)
                for p in data.batch_paths(source.train[0], self._stream_seed(source), batch, i, shard)]

    def _fixed_batches(self):
        """The first test images of each dataset (training images when its test split is empty)."""
        cfg, fixed = self.config, []
        for source in self.sources:
            paths, labels = source.test if len(source.test[0]) else source.train
            x, c = next(iter(data.eval_dataset(paths[: cfg.batch_size], labels[: cfg.batch_size], source.crop_size,
                                               cfg.image_size, cfg.batch_size)))
            fixed.append((source.name, x.numpy(), c.numpy()))
        return fixed

    # ------------------------------------------------------------------ train
    def train(self):
        """Train to `num_iters`; returns the last step. Holds `model_save_dir`'s lock throughout; SIGINT or
        SIGTERM stop it after the running iteration with a checkpoint (TrainingStopped)."""
        cfg = self.config
        for source in self.sources:
            if len(source.train[0]) < cfg.batch_size:
                raise ValueError(f"--batch_size {cfg.batch_size} is larger than the {len(source.train[0])} "
                                 f"{source.name} training images")
        chief = self.locations.chief
        if chief:
            check_writable(self._output_folders())
        with FolderLock(cfg.model_save_dir) if chief else contextlib.nullcontext():
            return self._train(chief)

    def _output_folders(self):
        cfg = self.config
        folders = [("--model_save_dir", cfg.model_save_dir), ("--sample_dir", cfg.sample_dir)]
        return folders + ([("--log_dir", cfg.log_dir)] if cfg.use_tensorboard else [])

    def _train(self, chief):
        cfg = self.config
        for source in self.sources:
            print(f"{source.name}: training on {len(source.train[0])} images"
                  + (f", {len(source.test[0])} held out for test mode." if source.name == "CelebA" else "."))
        self.print_network()
        print(f"Strategy: {type(self.strategy).__name__} with {self.strategy.num_replicas_in_sync} replica(s); "
              + hardware.describe(cfg.mixed_precision, cfg.jit_compile, cfg.num_iters))

        start = 0
        if chief:
            remove_temp_folders(cfg.model_save_dir)
        existing = available_steps(cfg.model_save_dir)
        if cfg.resume_iters is None and existing:
            raise ValueError(f"--model_save_dir {cfg.model_save_dir} already holds checkpoints (steps "
                             f"{', '.join(map(str, existing))}); continue with --resume_iters latest, or choose "
                             "another --model_save_dir so that they are not overwritten")
        if cfg.resume_iters is not None:  # config.json was checked against cfg by prepare_run
            path = checkpoint_path(cfg.model_save_dir, cfg.resume_iters)
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
            start = int(self.trainer.step.numpy())
        if chief:
            try:
                save_config(cfg, cfg.model_save_dir)
            except OSError as e:
                raise TrainingError(f"{write_failure(e, '--model_save_dir', cfg.model_save_dir)} while writing "
                                    f"{CONFIG_FILE}: nothing was trained and no file was changed; free space there "
                                    "and run again") from None
        # Every worker saves (the save is a collective), but only the chief into model_save_dir.
        manager = tf.train.CheckpointManager(self.ckpt, self.locations.path(cfg.model_save_dir), max_to_keep=None,
                                             checkpoint_name=CHECKPOINT_NAME)
        writer = tf.summary.create_file_writer(cfg.log_dir) if cfg.use_tensorboard and chief else None
        fixed = self._fixed_batches()
        held_out = self._held_out() if cfg.eval_step and chief else None
        streams = {source.name: self._input(source, start) for source in self.sources}
        latest = {}  # the last value of every loss term: G's terms change only every n_critic steps
        vote = distribute.StopVote(self.strategy, (WRITE_FAILED, *SIGNALS))
        self.skipped_images, self.write_failure = [], None
        print("Start training...")
        t0, step = time.time(), start
        try:
            with StopSignals() as signals:
                while step < cfg.num_iters:
                    reason = vote(WRITE_FAILED if self.write_failure else signals.requested)
                    if reason == WRITE_FAILED:
                        self._stop_unwritable(self._save_now(manager, step, start), step)
                    if reason:
                        self._stop(manager, step, start, reason)
                    try:
                        batch = {name: next(it) for name, it in streams.items()}
                    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
                        streams = self._bad_batch(e, streams, manager, step, start)
                        continue
                    try:
                        terms = self.trainer.train_step(batch)
                    except NonFiniteLoss as e:
                        raise stopped_without_saving(e, manager.latest_checkpoint) from None
                    latest.update(terms)
                    step += 1
                    if step % cfg.log_step == 0 and chief:
                        values = {k: float(v) for k, v in latest.items()}
                        print(progress_line(step, cfg.num_iters, start, time.time() - t0, values), flush=True)
                        if writer is not None:
                            self._log_scalars(writer, values, step)
                    if step % cfg.sample_step == 0 and chief:
                        self._save_sample(writer, fixed, step)
                    if held_out and step % cfg.eval_step == 0:
                        self._evaluate(writer, held_out, step)
                    if step % cfg.model_save_step == 0:
                        print(f"Saved model checkpoint {manager.save(checkpoint_number=step)}")
            if writer is not None:  # what is still queued: a failure counts as one of the last step's writes
                self._flush(writer)
            if step % cfg.model_save_step and step > start:
                print(f"Saved final model checkpoint {manager.save(checkpoint_number=step)}")
            if self.write_failure:  # at the last step (or its final flush): saved just above
                self._stop_unwritable(self._save_now(manager, step, start), step)
            if self.skipped_images:
                print(f"Skipped {len(self.skipped_images)} training image(s) that cannot be decoded: "
                      + ", ".join(self.skipped_images))
        finally:
            if writer is not None:  # after an error: a failed flush must not replace it
                self._flush(writer)
            self.locations.cleanup()  # a non-chief worker's throw-away folders, also when training fails
        return step

    def _save_now(self, manager, step, start):
        """A checkpoint at `step` unless nothing was trained since the run started (or it was saved already); its
        path or None."""
        latest = manager.latest_checkpoint
        if latest and checkpoint_step(latest) == step:
            return latest
        return manager.save(checkpoint_number=step) if step > start else None

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

    @contextlib.contextmanager
    def _writing(self, option, folder, writer=None):
        """Record in `write_failure`, instead of raising, a failed write (a full disk, say) of a sample, log or
        evaluation into `folder`: the loop then saves the step's checkpoint and stops naming the folder. With a
        TensorBoard `writer`, flushes it at the end of the block: its writes are queued, so a full --log_dir shows
        only when they reach the disk."""
        try:
            yield
            if writer is not None:
                writer.flush()
        except (OSError, tf.errors.OpError) as e:
            if self.write_failure is None:
                self.write_failure = write_failure(e, option, folder)

    def _flush(self, writer):
        """Flush the TensorBoard writer; a failure is recorded as one of a --log_dir write (`_writing`)."""
        with self._writing("--log_dir", self.config.log_dir, writer):
            pass

    def _stop_unwritable(self, path, step):
        saved = f"saved {path} first" if path else "nothing trained since the start, nothing saved"
        if self.write_failure is None:  # a worker other than the chief, which writes no samples or logs
            raise TrainingError(f"the chief worker could not write a sample, log or evaluation; training stopped at "
                                f"step {step} ({saved})")
        raise TrainingError(f"{self.write_failure}; training stopped at step {step} ({saved}). Free space there (or "
                            "choose another folder) and continue with --resume_iters latest (and the same options)")

    def _stop(self, manager, step, start, signum):
        path = self._save_now(manager, step, start)
        name = signal_name(signum)
        saved = f"saved {path}" if path else "nothing trained since the start, nothing saved"
        message = (f"Stopped by {name} at step {step} ({saved}). Continue with: --resume_iters latest "
                   "(and the same options)")
        print(message, flush=True)
        raise TrainingStopped(signum, step, message)

    def _bad_batch(self, error, streams, manager, step, start):
        """A training batch failed to decode: name the file, then skip it (--skip_bad_images) or save and stop."""
        cfg = self.config
        bad = []
        for source in self.sources:
            for path in self._batch_files(source, step):
                reason = data.undecodable(path, source.crop_size, cfg.image_size)
                if reason:
                    bad.append((source, path, reason))
        if not bad:
            path = self._save_now(manager, step, start)
            raise data.DataError(f"the training batch of step {step + 1} failed ({first_line(error)}) and no single "
                                 f"file of it could be blamed; {f'saved {path}' if path else 'nothing to save'}")
        if not cfg.skip_bad_images:
            path = self._save_now(manager, step, start)
            saved = f"saved {path} first" if path else "nothing trained since the start, nothing saved"
            raise data.DataError(f"{bad[0][1]}: cannot be decoded ({bad[0][2]}); training stopped at step {step} "
                                 f"({saved}). Replace or remove the file and continue with --resume_iters latest, "
                                 "or pass --skip_bad_images True to skip such files")
        streams = dict(streams)
        for source, path, reason in bad:
            keep = [i for i, p in enumerate(source.train[0]) if p != path]
            source.train = ([source.train[0][i] for i in keep], source.train[1][keep])
            self.skipped_images.append(path)
            print(f"Skipped {path}: cannot be decoded ({reason}); {len(self.skipped_images)} skipped so far")
            streams[source.name] = self._input(source, step)
        return streams

    def _log_scalars(self, writer, values, step):
        values = dict(values, **{"lr/g_lr": float(self.trainer.g_optimizer.learning_rate.numpy()),
                                 "lr/d_lr": float(self.trainer.d_optimizer.learning_rate.numpy())})
        with self._writing("--log_dir", self.config.log_dir, writer), writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)

    def _held_out(self):
        """For --eval_step: per dataset, its judge (trained once on the real training images, cached in
        model_save_dir/judges) and a fixed, seeded subset of its held-out images."""
        cfg, parts = self.config, {}
        for source in self.sources:
            if source.name == "RaFD" and not cfg.eval_dir:
                raise ValueError("--eval_step needs held-out images of the folder dataset: pass --eval_dir (one "
                                 "folder per class, the classes of --rafd_image_dir)")
            if not len(source.test[0]):
                raise ValueError(f"--eval_step needs held-out images, but the {source.name} test split is empty: "
                                 "pass --test_size 1 or more")
            one_hot = self.layout.spec(source.name).one_hot
            print(f"--eval_step: preparing the {source.name} judge (trained once on the real training images)...")
            judge, path, trained = measures.judge_for(os.path.join(cfg.model_save_dir, "judges"), source.name, one_hot,
                                                      *source.train, source.crop_size, cfg.image_size)
            print(f"{'Trained' if trained else 'Loaded'} {path}")
            x, labels = measures.load_split(*source.test, source.crop_size, cfg.image_size, limit=cfg.eval_images)
            parts[source.name] = (judge, x, labels)
        return parts

    def _evaluate(self, writer, held_out, step):
        """Judge the sampling generator's translations of the held-out subsets; print and log the measures."""
        for name, (judge, x, labels) in held_out.items():
            result = measures.measure(self._translate, judge, self.layout, name, x, labels)
            prefix = f"eval/{name}" if self.layout.has_mask else "eval"
            values = measures.scalars(result, prefix)
            print(f"Evaluation at step {step} ({name}, {len(x)} held-out images): " + ", ".join(
                f"{k.split('/')[-1]} {values[f'{prefix}/{k}']:.4f}" for k in measures.SCALARS
                if f"{prefix}/{k}" in values))
            if writer is not None:
                with self._writing("--log_dir", self.config.log_dir, writer), writer.as_default(step=step):
                    for tag, value in values.items():
                        tf.summary.scalar(tag, value)

    def _save_sample(self, writer, fixed, step):
        sample = np.concatenate([self.translate_grid(name, x, c) for name, x, c in fixed], axis=0)
        with self._writing("--sample_dir", self.config.sample_dir):
            path = images.save_png(os.path.join(self.config.sample_dir, f"{step}-images.png"), sample)
            print(f"Saved real and fake images into {path}")
        if writer is not None:
            with self._writing("--log_dir", self.config.log_dir, writer), writer.as_default(step=step):
                tf.summary.image("samples", sample[None], max_outputs=1)

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
