"""`StarGAN`, a `keras.Model` to train with `compile()` and `fit()` and Keras' callbacks: train.py trains through it.

One fit() step is `StarGANTrainer.train_step`, the official iteration (learning-rate schedule, D every step and G
every n_critic-th, the moving average of G, the mask vector of joint training) on the batch Keras took from the
dataset; only the loop around it is Keras'. G, D, the moving average, both optimizers and the step counter are
tracked state, so `save_weights`/`load_weights` (and with them BackupAndRestore and ModelCheckpoint) carry everything
training needs to continue.

Every fit() stops the way train.py does: SIGINT or SIGTERM after the running step, a failed sample, log or evaluation
write at the next step, a batch that fails to decode (`stargan_tf.streams.TrainingStreams` names its file) at once,
each after saving the step with the run's `StarGANCheckpoint` (all workers agree on the step); a non-finite loss
without saving.
"""

import contextlib
import dataclasses
import inspect

import keras
import tensorflow as tf

from stargan_tf import distribute, domains, hardware
from stargan_tf.cli import write_failure
from stargan_tf.stopping import SIGNALS, StopSignals, TrainingStopped, signal_name
from stargan_tf.streams import TrainingStreams
from stargan_tf.training import NonFiniteLoss, StarGANTrainer, TrainingError, build_networks, build_optimizers

WRITE_FAILED = "write failed"  # the stop reason a chief votes for when a sample, log or evaluation write failed
ADVICE = "continue from that checkpoint"  # how to go on after a stop; train.py names --resume_iters


class StarGAN(keras.Model):
    """StarGAN's G and D (handed in, or built from `config`) trained as train.py trains them.

    Batches are the dicts of `stargan_tf.data.train_dataset` (image, label_org, label_trg, alpha; labels in the
    layout of `stargan_tf.domains.layout_for(config)`), or `{dataset_name: batch}` for a joint 'Both' layout; or pass
    a `stargan_tf.streams.TrainingStreams` as fit()'s `x`. Create (and compile) the model under `strategy.scope()` to
    train on several devices. Calling the model, `model([images, labels])`, translates with the sampling generator
    (the moving average of G when enabled).

    `log_every`: fit()'s logs hold the loss terms every `log_every` steps and at an epoch's end (reading them waits
    for the device: train.py reads them at its --log_step only). `advice`: how a stopped run goes on, in messages.
    """

    def __init__(self, config, generator=None, discriminator=None, **kwargs):
        super().__init__(**{"name": "stargan", **kwargs})
        self.config = config.validate()
        self.layout = domains.layout_for(self.config)
        with self.distribute_strategy.scope():
            # Made outside the model's name scope, so that checkpoints name it `step` as train.py's always have.
            self.step = keras.Variable(0, dtype="int64", trainable=False, name="step")
            # Batches of the running Keras epoch already trained: after a restore, fit() skips that many batches of
            # the epoch Keras replays (BackupAndRestore restarts an interrupted epoch from its first batch).
            self.epoch_step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                              name="epoch_step")
            precision = hardware.resolve_precision(self.config.mixed_precision)
            self.generator, self.discriminator, self.generator_ema = build_networks(
                self.config, self.layout, precision, generator, discriminator)
        self.trainer = None  # made by compile(), which hands it the networks and the optimizers
        self.log_every, self.advice = 1, ADVICE
        self.write_failure = None  # what a sample, log or evaluation write of the running fit() failed with
        self.step_value = None  # the step counter as a Python int while fit() runs (read without waiting)
        self._terms = {}  # the last value of every loss term (G's change only every n_critic steps)
        self._latest = {}  # fit()'s logs, as floats
        self._epoch_calls = None  # batches Keras handed over in the running epoch; None outside fit()
        self._epoch_steps = None  # steps of one epoch of the running fit()
        self._replayed = 0  # batches of the running epoch trained before a restore (epoch_step, read once)
        self._fit = None  # the running fit()'s _FitRun
        self.built = True

    @property
    def sampler(self):
        """The generator samples, tests and exports use: the moving average of G when enabled, else G."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @property
    def data_start(self):
        """Index of the first batch the next fit() takes from its dataset: pass it as `train_dataset(start_batch=...)`
        after restoring weights so that the data stream continues where the restored run was."""
        return int(self.step.numpy()) - int(self.epoch_step.numpy())

    def update_logs(self, values):
        """Add `values` to the logs fit() reports, from the running step on (the epoch's logs included)."""
        self._latest.update(values)

    def latest_terms(self):
        """The last value of every loss term and both learning rates, as floats (this waits for the device)."""
        values = {k: float(v) for k, v in self._terms.items()}
        values["lr/g_lr"] = float(self.trainer.g_optimizer.learning_rate.numpy())
        values["lr/d_lr"] = float(self.trainer.d_optimizer.learning_rate.numpy())
        return values

    @contextlib.contextmanager
    def writing(self, option, folder, writer=None):
        """Record in `write_failure`, instead of raising, a failed write (a full disk, say) of a sample, log or
        evaluation into `folder` (`option` names it): fit() then saves the step and stops naming the folder. With a
        TensorBoard `writer`, flushes it at the end of the block: its writes are queued, so a full log folder shows
        only when they reach the disk."""
        try:
            yield
            if writer is not None:
                writer.flush()
        except (OSError, tf.errors.OpError) as e:
            if self.write_failure is None:
                self.write_failure = write_failure(e, option, folder)

    def call(self, inputs, training=False):
        return self.sampler(inputs, training=False)

    def compile(self, g_optimizer=None, d_optimizer=None, steps_per_execution=1):
        """Train with these optimizers (default: the config's Adam, as train.py); each keeps the config's schedule,
        starting from its own learning rate. Create them under the model's strategy scope. Compile before loading
        weights that hold optimizer state (as for any Keras model)."""
        with self.distribute_strategy.scope():
            if g_optimizer is None or d_optimizer is None:
                g_default, d_default = build_optimizers(self.config)
                g_optimizer = g_default if g_optimizer is None else g_optimizer
                d_optimizer = d_default if d_optimizer is None else d_optimizer
            self.trainer = StarGANTrainer(self.config, self.layout, self.distribute_strategy, generator=self.generator,
                                          discriminator=self.discriminator, generator_ema=self.generator_ema,
                                          g_optimizer=g_optimizer, d_optimizer=d_optimizer, step=self.step)
        self.g_optimizer, self.d_optimizer = self.trainer.g_optimizer, self.trainer.d_optimizer
        super().compile(optimizer=None, steps_per_execution=steps_per_execution, jit_compile=False)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with a first callback that closes each epoch for the replay logic of `epoch_step`;
        `shuffle` defaults to False (stargan_tf.data shuffles its stream itself); `x` may be a TrainingStreams.
        Stops as the module says. Callbacks with an `on_fit_exit()` method (StarGANCheckpoint: its folder lock) have
        it called however fit() ends, an error included, which Keras' `on_train_end` is not."""
        bound = inspect.signature(super().fit).bind(*args, **kwargs)
        bound.arguments.setdefault("shuffle", False)
        streams = bound.arguments.get("x")
        if isinstance(streams, TrainingStreams):
            bound.arguments["x"] = streams.dataset()
        else:
            streams = None
        callbacks = bound.arguments.get("callbacks")
        tracker = _EpochTracker()
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.callbacks.insert(0, tracker)
            tracker.set_model(self)
            given = callbacks.callbacks
        else:
            given = [tracker, *(callbacks or [])]
            bound.arguments["callbacks"] = given
        self._epoch_calls, self._epoch_steps = 0, bound.arguments.get("steps_per_epoch")
        self.write_failure = None
        vote = distribute.StopVote(self.distribute_strategy, (WRITE_FAILED, *SIGNALS))
        try:
            with StopSignals() as signals:
                saver = next((c for c in given if hasattr(c, "save_now")), None)
                self._fit = _FitRun(streams, signals, vote, saver)
                history = super().fit(*bound.args, **bound.kwargs)
            if self.write_failure:  # at the last step, after the final checkpoint
                self._stop_unwritable()
            return history
        finally:
            self._fit, self._epoch_calls, self.step_value = None, None, None
            self.epoch_step.assign(0)
            for callback in given:
                if hasattr(callback, "on_fit_exit"):
                    callback.on_fit_exit()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build (the networks and optimizers are): Keras would take a batch from the dataset and average
        it over the replicas, which fails for the dict batches of several workers."""

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = self._train_function
        return self.train_function

    def _train_function(self, batches):
        """What fit() calls with the (distributed) batches of one execution: the trainer's step for each."""
        if self._fit is not None and self.step_value is None:  # read here: BackupAndRestore restores in on_train_begin
            self.step_value, self._replayed = int(self.step.numpy()), int(self.epoch_step.numpy())
        for _ in range(self.steps_per_execution):
            if self._fit is not None:
                self._check_stop()
                batches = self._fit.batches or batches
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
                if self._fit is None or self._fit.streams is None:
                    raise
                self._fit.batches = batches = self._fit.streams.recover(e, self.step_value, self._save_step)
                batch = next(batches)
            self._train_batch(batch[0] if isinstance(batch, tuple) else batch)  # train_on_batch sends (x, y, w)
        return self._latest  # the dict itself: values callbacks add at an epoch's last step reach the epoch's logs

    def _train_batch(self, batch):
        if self._epoch_calls is not None:
            self._epoch_calls += 1
            if self._epoch_calls <= self._replayed:
                return  # trained before the restore
        try:
            terms = self.trainer.train_step(self._by_dataset(batch))
        except NonFiniteLoss as e:
            saver = self._fit.saver if self._fit is not None else None
            raise e.kept(saver.latest if saver is not None else None) from None
        self._terms.update(terms)
        if self.step_value is not None:
            self.step_value += 1
        if self._fit is not None:
            self._fit.trained = True
        if (self.step_value is None or self.step_value % self.log_every == 0
                or (self._epoch_steps and self._epoch_calls == self._epoch_steps)):
            self._latest.update(self.latest_terms())
        if self._epoch_calls is not None:
            self.epoch_step.assign(self._epoch_calls)

    def _check_stop(self):
        """Every worker, before each step: stop (saving first) when any worker was signalled or a write failed."""
        reason = self._fit.vote(WRITE_FAILED if self.write_failure else self._fit.signals.requested)
        if reason == WRITE_FAILED:
            self._stop_unwritable()
        if reason:
            saved = self._save_step()
            message = (f"Stopped by {signal_name(reason)} at step {self.step_value} ({saved.removesuffix(' first')}). "
                       f"{self.advice[:1].upper()}{self.advice[1:]}")
            print(message, flush=True)
            raise TrainingStopped(reason, self.step_value, message)

    def _stop_unwritable(self):
        saved = self._save_step()
        if self.write_failure is None:  # a worker other than the chief, which writes no samples or logs
            raise TrainingError(f"the chief worker could not write a sample, log or evaluation; training stopped at "
                                f"step {self.step_value} ({saved})")
        raise TrainingError(f"{self.write_failure}; training stopped at step {self.step_value} ({saved}). Free space "
                            f"there (or choose another folder) and {self.advice}")

    def _save_step(self):
        """Save the running step with the fit's checkpoint callback (a StarGANCheckpoint), unless nothing was trained
        in this fit(); what was saved, in words."""
        if self._fit.saver is None:
            return "no StarGANCheckpoint among the callbacks: nothing saved"
        if not self._fit.trained:
            return "nothing trained since the start, nothing saved"
        return f"saved {self._fit.saver.save_now(self.step_value)} first"

    def _by_dataset(self, batch):
        datasets = self.layout.datasets
        if isinstance(batch, dict) and set(batch) == set(datasets):
            return batch
        if len(datasets) == 1:
            return {datasets[0]: batch}
        raise ValueError(f"joint training takes {{dataset: batch}} dicts with the keys {', '.join(datasets)}, got "
                         f"{', '.join(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__}")

    def _end_epoch(self):
        self._epoch_calls = self._replayed = 0
        self.epoch_step.assign(0)


@dataclasses.dataclass
class _FitRun:
    """What one fit() stops with: its TrainingStreams (or None), the signal flags, the vote across workers and the
    checkpoint callback that saves before a stop; `batches` replaces Keras' iterator once a bad batch was skipped,
    `trained` says whether a step was trained."""

    streams: object
    signals: StopSignals
    vote: object
    saver: object
    batches: object = None
    trained: bool = False


class _EpochTracker(keras.callbacks.Callback):
    """Runs first at every epoch end, so that checkpoints written then (BackupAndRestore, ModelCheckpoint) hold
    `epoch_step` 0: a run restored from them starts the next epoch without skipping."""

    def on_epoch_end(self, epoch, logs=None):
        self.model._end_epoch()
