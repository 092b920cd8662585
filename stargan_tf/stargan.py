"""`StarGAN`, a `keras.Model` to train with `compile()` and `fit()` and Keras' callbacks.

One fit() step is `StarGANTrainer.train_step`, the very iteration train.py runs (learning-rate schedule, D every
step and G every n_critic-th, the moving average of G, the mask vector of joint training) on the batch Keras took
from the dataset; only the loop around it is Keras'. G, D, the moving average, both optimizers and the step counter
are tracked state, so `save_weights`/`load_weights` (and with them BackupAndRestore and ModelCheckpoint) carry
everything training needs to continue.
"""

import inspect

import keras

from stargan_tf import domains, hardware
from stargan_tf.training import StarGANTrainer, build_networks, build_optimizers


class StarGAN(keras.Model):
    """StarGAN's G and D (handed in, or built from `config`) trained as train.py trains them.

    Batches are the dicts of `stargan_tf.data.train_dataset` (image, label_org, label_trg, alpha; labels in the
    layout of `stargan_tf.domains.layout_for(config)`), or `{dataset_name: batch}` for a joint 'Both' layout.
    Create (and compile) the model under `strategy.scope()` to train on several devices. Calling the model,
    `model([images, labels])`, translates with the sampling generator (the moving average of G when enabled).
    """

    def __init__(self, config, generator=None, discriminator=None, **kwargs):
        super().__init__(**{"name": "stargan", **kwargs})
        self.config = config.validate()
        self.layout = domains.layout_for(self.config)
        with self.distribute_strategy.scope():
            self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="step")
            # Batches of the running Keras epoch already trained: after a restore, fit() skips that many batches of
            # the epoch Keras replays (BackupAndRestore restarts an interrupted epoch from its first batch).
            self.epoch_step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                              name="epoch_step")
            precision = hardware.resolve_precision(self.config.mixed_precision)
            self.generator, self.discriminator, self.generator_ema = build_networks(
                self.config, self.layout, precision, generator, discriminator)
        self.trainer = None  # made by compile(), which hands it the networks and the optimizers
        self._latest = {}  # fit()'s logs: the last value of every term (G's change only every n_critic steps)
        self._epoch_calls = None  # batches Keras handed over in the running epoch; None outside fit()
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
        `shuffle` defaults to False (stargan_tf.data shuffles its stream itself). Callbacks with an `on_fit_exit()`
        method (StarGANCheckpoint: its folder lock) have it called however fit() ends, an error included, which
        Keras' `on_train_end` is not."""
        bound = inspect.signature(super().fit).bind(*args, **kwargs)
        bound.arguments.setdefault("shuffle", False)
        callbacks = bound.arguments.get("callbacks")
        tracker = _EpochTracker()
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.callbacks.insert(0, tracker)
            tracker.set_model(self)
            given = callbacks.callbacks
        else:
            given = [tracker, *(callbacks or [])]
            bound.arguments["callbacks"] = given
        self._epoch_calls = 0
        try:
            return super().fit(*bound.args, **bound.kwargs)
        finally:
            self._epoch_calls = None
            self.epoch_step.assign(0)
            for callback in given:
                if hasattr(callback, "on_fit_exit"):
                    callback.on_fit_exit()

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = self._train_function
        return self.train_function

    def _train_function(self, batches):
        """What fit() calls with the (distributed) batches of one execution: the trainer's step for each."""
        for _, batch in zip(range(self.steps_per_execution), batches, strict=False):
            self._train_batch(batch[0] if isinstance(batch, tuple) else batch)  # train_on_batch sends (x, y, w)
        return self._latest  # the dict itself: values callbacks add at an epoch's last step reach the epoch's logs

    def _train_batch(self, batch):
        if self._epoch_calls is not None:
            self._epoch_calls += 1
            if self._epoch_calls <= int(self.epoch_step.numpy()):
                return  # trained before the restore
        terms = self.trainer.train_step(self._by_dataset(batch))
        self._latest.update({k: float(v) for k, v in terms.items()})
        self._latest["lr/g_lr"] = float(self.trainer.g_optimizer.learning_rate.numpy())
        self._latest["lr/d_lr"] = float(self.trainer.d_optimizer.learning_rate.numpy())
        if self._epoch_calls is not None:
            self.epoch_step.assign(self._epoch_calls)

    def _by_dataset(self, batch):
        datasets = self.layout.datasets
        if isinstance(batch, dict) and set(batch) == set(datasets):
            return batch
        if len(datasets) == 1:
            return {datasets[0]: batch}
        raise ValueError(f"joint training takes {{dataset: batch}} dicts with the keys {', '.join(datasets)}, got "
                         f"{', '.join(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__}")

    def _end_epoch(self):
        self._epoch_calls = 0
        self.epoch_step.assign(0)


class _EpochTracker(keras.callbacks.Callback):
    """Runs first at every epoch end, so that checkpoints written then (BackupAndRestore, ModelCheckpoint) hold
    `epoch_step` 0: a run restored from them starts the next epoch without skipping."""

    def on_epoch_end(self, epoch, logs=None):
        self.model._end_epoch()

