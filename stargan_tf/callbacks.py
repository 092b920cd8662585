"""Keras callbacks for `stargan_tf.StarGAN`: every periodic job of a training run, written once for train.py and a
user's fit() alike: checkpoints (and the folder lock) export.py reads, sample grids, the evaluation measures, the
progress line and TensorBoard scalars. They act on the model's step, which continues across restores. A failed write
of a sample, log or evaluation is recorded with `model.writing` and stops fit() at the next step, after saving."""

import datetime
import os
import time

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data, distribute, images, measures
from stargan_tf.checkpoints import checkpoint_step, checkpoint_writer, remove_temp_folders
from stargan_tf.cli import write_failure
from stargan_tf.config import CONFIG_FILE, save_config
from stargan_tf.lock import FolderLock
from stargan_tf.training import TrainingError


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

def restore_backup(model, backup):
    """Load the backup of `backup` (a `keras.callbacks.BackupAndRestore`) into `model` now, if there is one, and
    return `model.data_start` (0 for a fresh run): build the data with `train_dataset(start_batch=...)` from it, so
    that a resumed fit() reads the very batches the interrupted one would have read next."""
    if os.path.exists(backup._weights_path):
        model.load_weights(backup._weights_path)
    return model.data_start


def first_images(paths, labels, crop_size, image_size, count):
    """The first `count` images of a split (float32 in [-1, 1]) and their labels, preprocessed as train.py samples
    them: what `SampleGrid` translates."""
    x, c = next(iter(data.eval_dataset(paths[:count], labels[:count], crop_size, image_size, count)))
    return x.numpy(), c.numpy()


class EveryNSteps(keras.callbacks.Callback):
    """Calls `at_step(step, logs)` after every `every_n_steps`-th step of the model's counter, and only for steps
    trained in this fit() (not again for the step a restored run starts at)."""

    def __init__(self, every_n_steps):
        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = None

    def _step(self):
        """The model's step: counted by fit() without waiting for the device, read from the variable elsewhere."""
        step = getattr(self.model, "step_value", None)
        return int(self.model.step.numpy()) if step is None else step

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:  # read here: BackupAndRestore restores in on_train_begin, in any callback order
            self._last = int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step != self._last and step % self.every_n_steps == 0:
            self._last = step
            self.at_step(step, logs if logs is not None else {})

    def at_step(self, step, logs):
        raise NotImplementedError


class StarGANCheckpoint(EveryNSteps):
    """Writes train.py's checkpoints, `<model_save_dir>/ckpt-<step>`, every `every_n_steps` steps and when fit()
    ends, and config.json at its start: what `train.py --resume_iters`, test mode and export.py read. Holds the
    folder's lock (as train.py does) from `acquire()` or fit()'s start until fit() ends, so that two runs never write
    into one folder. When config.json cannot be written (a full disk), fit() stops before the first step with a
    TrainingError naming the folder (`option`), and no `.tmp` is left. `verbose` prints each save."""

    def __init__(self, model_save_dir, every_n_steps, option="StarGANCheckpoint model_save_dir", verbose=False):
        super().__init__(every_n_steps)
        self.model_save_dir, self.option, self.verbose = model_save_dir, option, verbose
        self._manager = self._locations = None
        self._lock = FolderLock(model_save_dir, option)
        self._held = False
        self.saved = []  # the checkpoint paths written, in order

    def acquire(self):
        """Take the folder's lock now (the chief alone: call it there) and remove torn saves' temporary folders; held
        until fit() ends, or `release()`."""
        if not self._held:
            self._lock.acquire()
            self._held = True
            remove_temp_folders(self.model_save_dir)

    def release(self):
        if self._held:
            self._lock.release()
            self._held = False

    @property
    def latest(self):
        """The folder's latest checkpoint (an earlier run's too), or None."""
        return self._manager.latest_checkpoint if self._manager is not None else None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._locations = distribute.WriteLocations(self.model.distribute_strategy)
        if self._locations.chief:
            self.acquire()
            try:
                save_config(self.model.config, self.model_save_dir)
            except OSError as e:
                raise TrainingError(f"{write_failure(e, self.option, self.model_save_dir)} while writing "
                                    f"{CONFIG_FILE}: nothing was trained and no file was changed; free space there "
                                    "and run again") from None
        # Every worker saves (the save is a collective), but only the chief into model_save_dir.
        self._manager = checkpoint_writer(self.model.trainer.checkpoint(), self._locations.path(self.model_save_dir))

    def at_step(self, step, logs, final=False):
        self.saved.append(self._manager.save(checkpoint_number=step))
        if self.verbose:
            print(f"Saved {'final ' if final else ''}model checkpoint {self.saved[-1]}", flush=True)

    def save_now(self, step):
        """The checkpoint of `step`, saved now unless it was already; its path."""
        if not (self.saved and checkpoint_step(self.saved[-1]) == step):
            self._last = step
            self.at_step(step, {})
        return self.saved[-1]

    def on_train_end(self, logs=None):
        step = self._step()
        if self._last is not None and step != self._last:
            self._last = step
            self.at_step(step, logs, final=True)

    def on_fit_exit(self):
        """Called by StarGAN.fit however it ends (Keras skips on_train_end when fit() raises)."""
        if self._locations is not None:
            self._locations.cleanup()
        self.release()


class SampleGrid(EveryNSteps):
    """Writes `<sample_dir>/<step>-images.png` every `every_n_steps` steps, as train.py does: for each dataset of
    `samples` ({dataset: (images, labels)}, e.g. from `first_images`), one row per image: the input, then its
    translation by the sampling generator into every domain of every dataset. With `view_scale`, the grid is
    enlarged that many times under a header row naming each column (`images.labelled`), as train.py saves it. With a
    TensorBoard `writer`, the grid is logged as the image `samples` too.

    When a grid cannot be written (a full disk), fit() stops at the next step as train.py does: the step's checkpoint
    is saved first (with a StarGANCheckpoint among the callbacks), then a TrainingError names the folder (`option`),
    the step and what was saved. No `.tmp` is left."""

    def __init__(self, sample_dir, samples, every_n_steps, writer=None, option="SampleGrid sample_dir",
                 log_option="SampleGrid log_dir", verbose=False, view_scale=None):
        super().__init__(every_n_steps)
        self.sample_dir, self.samples, self.writer, self.verbose = sample_dir, samples, writer, verbose
        self.view_scale = view_scale  # None: the bare grid; else enlarged this many times under a header row
        self.option, self.log_option = option, log_option
        self.written = []
        self._translate = None

    def at_step(self, step, logs):
        if not distribute.is_chief(self.model.distribute_strategy):
            return
        if self._translate is None:
            sampler = self.model.sampler
            self._translate = tf.function(lambda x, c: sampler([x, c], training=False), autograph=False)
        rows = []
        for dataset, (x, labels) in self.samples.items():
            targets = self.model.layout.targets(dataset, labels)
            rows.append(images.grid([x] + [self._translate(tf.constant(x), tf.constant(c)).numpy() for c in targets]))
        sample = np.concatenate(rows, axis=0)
        if self.view_scale is not None:
            sample = images.labelled(sample, ["input", *self.model.layout.target_names()], self.view_scale)
        with self.model.writing(self.option, self.sample_dir):
            self.written.append(images.save_png(os.path.join(self.sample_dir, f"{step}-images.png"), sample))
            if self.verbose:
                print(f"Saved real and fake images into {self.written[-1]}")
        if self.writer is not None:
            with (self.model.writing(self.log_option, _log_dir(self.writer), self.writer),
                  self.writer.as_default(step=step)):
                tf.summary.image("samples", sample[None], max_outputs=1)


def _log_dir(writer):
    return getattr(writer, "log_dir", None) or "the TensorBoard folder"


def summary_writer(log_dir):
    """A TensorBoard writer into `log_dir` that the callbacks can name in their messages."""
    writer = tf.summary.create_file_writer(log_dir)
    writer.log_dir = log_dir
    return writer


class ProgressLog(EveryNSteps):
    """Every `every_n_steps` steps: prints train.py's progress line (bar, rate, elapsed, ETA to `total_steps`, the
    last value of every loss term) and, with a TensorBoard `writer`, logs the terms and both learning rates. The
    model's logs hold the terms at these steps only when its `log_every` is `every_n_steps` (reading waits for the
    device). The writer is flushed when fit() ends."""

    ESTIMATE_STEPS = 20  # timed for the estimate line, after the first steps (which trace, or compile with XLA)

    def __init__(self, total_steps, every_n_steps, writer=None, option="ProgressLog log_dir"):
        super().__init__(every_n_steps)
        self.total_steps, self.writer, self.option = total_steps, writer, option
        self._start = self._t0 = self._t1 = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:
            self._t0 = time.time()
        super().on_train_batch_begin(batch, logs)
        if self._start is None:
            self._start = self._last

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._start = self._t1 = None

    def on_train_batch_end(self, batch, logs=None):
        """Also prints, once, what the run will cost: the time of ESTIMATE_STEPS steps after the traced ones, scaled
        to the steps left."""
        step, skip = self._step(), self.model.config.n_critic + 2  # D's step, then D and G's, are traced first
        if self._start is not None and step == self._start + skip:
            self._t1 = time.time()
        elif (self._t1 is not None and step == self._start + skip + self.ESTIMATE_STEPS
              and distribute.is_chief(self.model.distribute_strategy)):
            seconds = (time.time() - self._t1) / self.ESTIMATE_STEPS
            print(f"Estimate: {seconds:.3f} s per step over steps {self._start + skip + 1}-{step}, so about "
                  f"{format_duration(seconds * (self.total_steps - step))} for the {self.total_steps - step} steps "
                  "left (samples, evaluations and checkpoints not counted)", flush=True)
        super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        """What the writer still queues reaches the disk: a failure there counts as one of the last step's writes."""
        if self.writer is not None:
            with self.model.writing(self.option, _log_dir(self.writer), self.writer):
                pass

    def at_step(self, step, logs):
        if not distribute.is_chief(self.model.distribute_strategy):
            return
        values = self.model.latest_terms()
        terms = {k: v for k, v in values.items() if not k.startswith("lr/")}
        print(progress_line(step, self.total_steps, self._start, time.time() - self._t0, terms), flush=True)
        if self.writer is not None:
            with self.model.writing(self.option, _log_dir(self.writer), self.writer), self.writer.as_default(step=step):
                for tag, value in values.items():
                    tf.summary.scalar(tag, value)


class Evaluate(EveryNSteps):
    """Every `every_n_steps` steps, judges the sampling generator's translations of a fixed subset of held-out
    images with `stargan_tf.measures`, as `train.py --eval_step` does, prints them and reports the numbers in fit()'s
    logs (`eval/...`; `eval/<dataset>/...` for a joint layout) and, with `log_dir` (or a TensorBoard `writer`), as
    TensorBoard scalars at the step.

    `splits`: {dataset: ((train paths, labels), (held-out paths, labels))}. A judge per dataset is trained once on
    the real training images and cached in `judge_dir`; `eval_images` held-out images are translated.
    """

    def __init__(self, splits, every_n_steps, judge_dir, eval_images=1000, log_dir=None, writer=None,
                 option="Evaluate log_dir"):
        super().__init__(every_n_steps)
        self.splits, self.judge_dir, self.eval_images, self.log_dir = splits, judge_dir, eval_images, log_dir
        self._held_out, self._writer, self.option = None, writer, option

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._held_out is not None or not distribute.is_chief(self.model.distribute_strategy):
            return
        config, layout, self._held_out = self.model.config, self.model.layout, {}
        for name, (train, held_out) in self.splits.items():
            crop = config.crop_size(name)
            print(f"--eval_step: preparing the {name} judge (trained once on the real training images)...")
            judge, path, trained = measures.judge_for(self.judge_dir, name, layout.spec(name).one_hot, *train, crop,
                                                      config.image_size)
            print(f"{'Trained' if trained else 'Loaded'} {path}")
            x, labels = measures.load_split(*held_out, crop, config.image_size, limit=self.eval_images)
            self._held_out[name] = (judge, x, labels)
        if self.log_dir and self._writer is None:
            self._writer = summary_writer(self.log_dir)

    def at_step(self, step, logs):
        if self._held_out is None:
            return
        layout, values = self.model.layout, {}
        for name, (judge, x, labels) in self._held_out.items():
            result = measures.measure(self.model.sampler, judge, layout, name, x, labels)
            prefix = f"eval/{name}" if layout.has_mask else "eval"
            found = measures.scalars(result, prefix)
            print(f"Evaluation at step {step} ({name}, {len(x)} held-out images): " + ", ".join(
                f"{k.split('/')[-1]} {found[f'{prefix}/{k}']:.4f}" for k in measures.SCALARS
                if f"{prefix}/{k}" in found))
            values.update(found)
        logs.update(values)
        self.model.update_logs(values)
        if self._writer is not None:
            with self.model.writing(self.option, _log_dir(self._writer), self._writer), \
                    self._writer.as_default(step=step):
                for tag, value in values.items():
                    tf.summary.scalar(tag, value)
