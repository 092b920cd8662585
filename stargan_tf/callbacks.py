"""Keras callbacks for `stargan_tf.StarGAN` that write what train.py writes: checkpoints export.py reads, sample
grids and the evaluation measures. They act on the model's step, which continues across restores."""

import os

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data, distribute, images, measures
from stargan_tf.checkpoints import CHECKPOINT_NAME, checkpoint_step, remove_temp_folders
from stargan_tf.cli import write_failure
from stargan_tf.config import CONFIG_FILE, save_config
from stargan_tf.lock import FolderLock
from stargan_tf.training import TrainingError

_SAVERS = {}  # id(model): the StarGANCheckpoint of the fit() running, which SampleGrid saves with when it fails


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

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:  # read here: BackupAndRestore restores in on_train_begin, in any callback order
            self._last = int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step != self._last and step % self.every_n_steps == 0:
            self._last = step
            self.at_step(step, logs if logs is not None else {})

    def at_step(self, step, logs):
        raise NotImplementedError


class StarGANCheckpoint(EveryNSteps):
    """Writes train.py's checkpoints, `<model_save_dir>/ckpt-<step>`, every `every_n_steps` steps and when fit()
    ends, and config.json at its start: what `train.py --resume_iters`, test mode and export.py read. Holds the
    folder's lock (as train.py does) while fit() runs, so that two runs never write into one folder. When config.json
    cannot be written (a full disk), fit() stops before the first step with a TrainingError naming the folder, and
    no `.tmp` is left."""

    def __init__(self, model_save_dir, every_n_steps):
        super().__init__(every_n_steps)
        self.model_save_dir = model_save_dir
        self._manager = self._locations = None
        self._lock = FolderLock(model_save_dir, "StarGANCheckpoint model_save_dir")
        self.saved = []  # the checkpoint paths written, in order

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._locations = distribute.WriteLocations(self.model.distribute_strategy)
        if self._locations.chief:
            self._lock.acquire()
            remove_temp_folders(self.model_save_dir)
            try:
                save_config(self.model.config, self.model_save_dir)
            except OSError as e:
                raise TrainingError(f"{write_failure(e, 'StarGANCheckpoint model_save_dir', self.model_save_dir)} "
                                    f"while writing {CONFIG_FILE}: nothing was trained and no file was changed; free "
                                    "space there and run again") from None
        # Every worker saves (the save is a collective), but only the chief into model_save_dir.
        self._manager = tf.train.CheckpointManager(self.model.trainer.checkpoint(),
                                                   self._locations.path(self.model_save_dir), max_to_keep=None,
                                                   checkpoint_name=CHECKPOINT_NAME)
        _SAVERS[id(self.model)] = self

    def at_step(self, step, logs):
        self.saved.append(self._manager.save(checkpoint_number=step))

    def save_now(self, step):
        """The checkpoint of `step`, saved now unless it was already; its path."""
        if not (self.saved and checkpoint_step(self.saved[-1]) == step):
            self._last = step
            self.at_step(step, {})
        return self.saved[-1]

    def on_train_end(self, logs=None):
        step = int(self.model.step.numpy())
        if self._last is not None and step != self._last:
            self._last = step
            self.at_step(step, logs)

    def on_fit_exit(self):
        """Called by StarGAN.fit however it ends (Keras skips on_train_end when fit() raises)."""
        if self.model is not None and _SAVERS.get(id(self.model)) is self:
            del _SAVERS[id(self.model)]
        if self._locations is not None:
            self._locations.cleanup()
        self._lock.release()


class SampleGrid(EveryNSteps):
    """Writes `<sample_dir>/<step>-images.png` every `every_n_steps` steps, as train.py does: for each dataset of
    `samples` ({dataset: (images, labels)}, e.g. from `first_images`), one row per image: the input, then its
    translation by the sampling generator into every domain of every dataset.

    When a grid cannot be written (a full disk), fit() stops as train.py does: with a StarGANCheckpoint among the
    callbacks (and one worker), the step's checkpoint is saved first; then a TrainingError names the folder, the step
    and what was saved. No `.tmp` is left."""

    def __init__(self, sample_dir, samples, every_n_steps):
        super().__init__(every_n_steps)
        self.sample_dir, self.samples = sample_dir, samples
        self.written = []
        self._translate = None

    def at_step(self, step, logs):
        if not distribute.is_chief(self.model.distribute_strategy):
            return
        if self._translate is None:
            sampler = self.model.sampler
            self._translate = tf.function(lambda x, c: sampler([x, c], training=False))
        rows = []
        for dataset, (x, labels) in self.samples.items():
            targets = self.model.layout.targets(dataset, labels)
            rows.append(images.grid([x] + [self._translate(tf.constant(x), tf.constant(c)).numpy() for c in targets]))
        try:
            self.written.append(images.save_png(os.path.join(self.sample_dir, f"{step}-images.png"),
                                                np.concatenate(rows, axis=0)))
        except OSError as e:
            raise TrainingError(f"{write_failure(e, 'SampleGrid sample_dir', self.sample_dir)}; fit() stopped at step "
                                f"{step} ({self._save(step)}). Free space there (or choose another folder) and "
                                "continue from the checkpoint") from None

    def _save(self, step):
        """Save the checkpoint of `step` with the fit's StarGANCheckpoint, if any; what was saved, in words."""
        saver = _SAVERS.get(id(self.model))
        if saver is None:
            return "no StarGANCheckpoint among the callbacks: nothing saved"
        if distribute.num_workers(self.model.distribute_strategy) > 1:  # a save is a collective: not the chief alone
            return f"nothing saved since {saver.saved[-1]}" if saver.saved else "nothing saved"
        return f"saved {saver.save_now(step)} first"


class Evaluate(EveryNSteps):
    """Every `every_n_steps` steps, judges the sampling generator's translations of a fixed subset of held-out
    images with `stargan_tf.measures`, as `train.py --eval_step` does, and reports the numbers in fit()'s logs
    (`eval/...`; `eval/<dataset>/...` for a joint layout) and, with `log_dir`, as TensorBoard scalars at the step.

    `splits`: {dataset: ((train paths, labels), (held-out paths, labels))}. A judge per dataset is trained once on
    the real training images and cached in `judge_dir`; `eval_images` held-out images are translated.
    """

    def __init__(self, splits, every_n_steps, judge_dir, eval_images=1000, log_dir=None):
        super().__init__(every_n_steps)
        self.splits, self.judge_dir, self.eval_images, self.log_dir = splits, judge_dir, eval_images, log_dir
        self._held_out, self._writer = None, None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._held_out is not None or not distribute.is_chief(self.model.distribute_strategy):
            return
        config, layout, self._held_out = self.model.config, self.model.layout, {}
        for name, (train, held_out) in self.splits.items():
            crop = config.crop_size(name)
            judge, _, _ = measures.judge_for(self.judge_dir, name, layout.spec(name).one_hot, *train, crop,
                                             config.image_size)
            x, labels = measures.load_split(*held_out, crop, config.image_size, limit=self.eval_images)
            self._held_out[name] = (judge, x, labels)
        if self.log_dir:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def at_step(self, step, logs):
        if self._held_out is None:
            return
        layout = self.model.layout
        values = {}
        for name, (judge, x, labels) in self._held_out.items():
            result = measures.measure(self.model.sampler, judge, layout, name, x, labels)
            values.update(measures.scalars(result, f"eval/{name}" if layout.has_mask else "eval"))
        logs.update(values)
        self.model.update_logs(values)
        if self._writer is not None:
            with self._writer.as_default(step=step):
                for tag, value in values.items():
                    tf.summary.scalar(tag, value)
            self._writer.flush()
