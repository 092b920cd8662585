"""StarGAN's train steps: WGAN-GP critic updates and, every n_critic-th step, a generator update.

The steps are `tf.function`s run through a `tf.distribute.Strategy` (the default strategy on one
device). Every random draw arrives with the batch (see `stargan_tf.data`), so a step is a pure function
of the weights and its inputs: this is what lets a mirrored step equal a single-device one.
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import domains, hardware, losses
from stargan_tf.checkpoints import training_checkpoint
from stargan_tf.data import Batch
from stargan_tf.networks import discriminator_for, generator_for
from stargan_tf.optimizers import FusedAdam

GP_FP16_SCALE = 1024.0  # keeps float16 gradients of the critic w.r.t. its input clear of underflow


def learning_rate_at(step, base_lr, num_iters, num_iters_decay, lr_update_step):
    """The rate in force after `step` finished iterations: constant, then linear to 0 over the last
    `num_iters_decay` iterations, changed every `lr_update_step` (the official schedule, ending at 0)."""
    if num_iters_decay <= 0:
        return base_lr
    last_update = (step // lr_update_step) * lr_update_step
    if last_update <= num_iters - num_iters_decay:
        return base_lr
    return base_lr * max(0.0, (num_iters - last_update) / num_iters_decay)


EMA_WARMUP = 5.0  # decay (1 + t) / (5 + t): the average spans about the last quarter of the G updates so far


def ema_decay_at(num_updates, decay, warmup=EMA_WARMUP):
    """The EMA decay at the `num_updates`-th generator update (1-based): `min(decay, (1 + t) / (warmup + t))`.

    A warm-up as in `tf.train.ExponentialMovingAverage(num_updates=...)` (which uses 10): early averages forget
    quickly, so the random initial weights never linger in the average of a short run (a plain 0.999 would still
    hold 0.999**800 = 45% of them after 800 updates), and the average spans about the last (warmup - 1)-th of the
    run until `decay` caps it. 5 beat TensorFlow's 10 on real data (README, "Results").
    """
    t = tf.cast(num_updates, tf.float32)
    return tf.minimum(tf.cast(decay, tf.float32), (1.0 + t) / (warmup + t))


def classification_loss_for(layout, dataset):
    """D's classification loss for images of `dataset`: only that dataset's slice of the logits and labels
    enters (the mask-vector scheme); sigmoid cross-entropy for attributes, softmax for one-hot classes."""
    spec = layout.spec(dataset)
    start = layout.offset(dataset)
    end = start + spec.dim
    base = losses.class_classification_loss if spec.one_hot else losses.attribute_classification_loss

    def loss(logits, label, global_batch_size=None):
        return base(logits[:, start:end], label[:, start:end], global_batch_size)

    return loss


class TrainingError(RuntimeError):
    """Training cannot go on; the message names the step and what to do."""


class NonFiniteLoss(TrainingError):
    """A loss term of iteration `step` (1-based) is NaN or infinite: `terms` holds those terms and their values.
    The weights that step updated are not finite either, so nothing should be saved from it."""

    ADVICE = "Lower --g_lr / --d_lr, check the --lambda_* weights, or look for broken images"

    def __init__(self, step, terms, kept=None):
        self.step, self.terms = step, terms
        self.what = f"step {step}: " + ", ".join(f"{k} = {v}" for k, v in terms.items())
        stopped = f"training stopped without saving ({kept})" if kept else "training stopped"
        super().__init__(f"{self.what}; {stopped}. {self.ADVICE}")

    def kept(self, last_checkpoint):
        """This error, saying what is kept: the last checkpoint (with finite weights), or nothing."""
        if not last_checkpoint:
            return NonFiniteLoss(self.step, self.terms, "nothing was saved")
        return NonFiniteLoss(self.step, self.terms, f"the last checkpoint, {last_checkpoint}, holds finite weights")


def build_networks(config, layout, precision, generator=None, discriminator=None):
    """(G, D, the moving average of G or None) for `config` and `layout`, building those not handed in: G and D in
    `precision`'s Keras policy; the average (when `config.g_ema_decay` > 0) float32 whatever the precision, or for a
    generator handed in, a clone of it (Keras keeps variables float32 in any policy). Call under the strategy's
    scope."""
    policy = hardware.POLICIES[precision]
    built_g = generator is None
    if generator is None:
        generator = generator_for(config, layout, dtype=policy)
    if discriminator is None:
        discriminator = discriminator_for(config, layout, dtype=policy)
    average = None
    if config.g_ema_decay > 0:
        average = (generator_for(config, layout, name="generator_ema", dtype="float32") if built_g
                   else keras.models.clone_model(generator))
    return generator, discriminator, average


def build_optimizers(config):
    """(G's, D's) optimizer as train.py trains with: the project's Adam (fused kernel) with the config's rates and
    betas."""
    return (FusedAdam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2),
            FusedAdam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2))


def _base_rate(optimizer, configured):
    """Where the learning-rate schedule starts for `optimizer`: the config's rate when the optimizer holds it (its
    float32 variable stores 1e-4 as 9.9999997e-05; the schedule computes from the exact value, as it always has), else
    the optimizer's own rate."""
    rate = optimizer.learning_rate
    value = float(rate.numpy()) if hasattr(rate, "numpy") else None
    return configured if value is not None and np.float32(value) == np.float32(configured) else None


class StarGANTrainer:
    """Owns G, D, their Adam optimizers and the step counter, and runs distributed train steps.

    The generator takes labels in `layout`'s layout; D classifies into every dataset's domains. With
    several datasets each iteration trains on a batch of each, in order, as the paper's joint training does.
    """

    def __init__(self, config, layout=None, strategy=None, *, generator, discriminator, g_optimizer, d_optimizer,
                 generator_ema=None, step=None):
        """Trains the networks and optimizers handed in, made under `strategy`'s scope (`from_config` makes train.py's;
        `stargan_tf.StarGAN` hands in its own). `generator_ema` is the moving average of G, needed when
        `config.g_ema_decay` > 0."""
        if config.g_ema_decay > 0 and generator_ema is None:
            raise ValueError("config.g_ema_decay > 0 trains a moving average of G: hand in generator_ema "
                             "(build_networks makes it)")
        self.config = config
        self.layout = layout or domains.layout_for(config)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.precision = hardware.resolve_precision(config.mixed_precision)
        self.jit_compile = hardware.resolve_jit(config.jit_compile, self.precision, config.num_iters)
        with self.strategy.scope():
            self.G, self.D = generator, discriminator
            # The moving average of G's weights, which samples, tests and exports use when enabled; G keeps training.
            self.G_ema = generator_ema if config.g_ema_decay > 0 else None
            self._use_optimizer("g", g_optimizer, _base_rate(g_optimizer, config.g_lr))
            self._use_optimizer("d", d_optimizer, _base_rate(d_optimizer, config.d_lr))
            self.step = step if step is not None else tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            if self.G_ema is not None:
                self.reset_ema()
        self._fns = {}

    @classmethod
    def from_config(cls, config, layout=None, strategy=None, *, g_optimizer=None, d_optimizer=None):
        """A trainer of the networks and optimizers train.py trains (`build_networks`, `build_optimizers`), built under
        `strategy`'s scope; optimizers handed in replace the config's Adam."""
        layout = layout or domains.layout_for(config)
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            generator, discriminator, average = build_networks(config, layout,
                                                               hardware.resolve_precision(config.mixed_precision))
            g_default, d_default = build_optimizers(config)
        return cls(config, layout, strategy, generator=generator, discriminator=discriminator, generator_ema=average,
                   g_optimizer=g_default if g_optimizer is None else g_optimizer,
                   d_optimizer=d_default if d_optimizer is None else d_optimizer)

    def _use_optimizer(self, name, optimizer, base_lr=None):
        """Build `optimizer` for G's ('g') or D's ('d') weights and train with it; `base_lr` (default: its rate) is
        where the schedule starts. With float16 it is wrapped in Keras' dynamic loss scaling (bfloat16 needs none)."""
        if not hasattr(optimizer.learning_rate, "assign"):
            raise ValueError(f"{name}_optimizer: pass a float learning rate, not a schedule: StarGAN sets the rates "
                             "itself (constant, then linear to 0 over config.num_iters_decay; 0 keeps them constant)")
        if self.precision == "fp16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if not optimizer.built:
            optimizer.build((self.G if name == "g" else self.D).trainable_variables)
        setattr(self, f"{name}_optimizer", optimizer)
        setattr(self, f"{name}_base_lr", float(optimizer.learning_rate.numpy()) if base_lr is None else base_lr)
        self._fns = {}

    def _scaled(self, optimizer, loss):
        return optimizer.scale_loss(loss) if self.precision == "fp16" else loss

    # ------------------------------------------------------------------ per-replica maths
    def _global_batch(self, images):
        return tf.shape(images)[0] * self.strategy.num_replicas_in_sync

    def _d_loss(self, x_real, x_fake, label_org, alpha, global_batch_size, cls_loss):
        """The critic's total loss and its terms; `x_fake` is treated as a constant.

        Real and fake images go through D as one batch: D has no batch-coupled layer, so this equals two
        calls, and it reads (and, in mixed precision, casts) D's 44.7M weights once instead of twice.
        """
        cfg = self.config
        src, cls = self.D(tf.concat([x_real, tf.stop_gradient(tf.cast(x_fake, x_real.dtype))], axis=0),
                          training=True)
        real_src, fake_src = tf.split(src, 2, axis=0)
        real_cls = tf.split(cls, 2, axis=0)[0]
        loss_real, loss_fake = losses.d_adversarial_loss(real_src, fake_src, global_batch_size)
        loss_cls = cls_loss(real_cls, label_org, global_batch_size)
        loss_gp = losses.gradient_penalty(lambda x: self.D(x, training=True)[0], x_real, x_fake, alpha,
                                          global_batch_size, scale=GP_FP16_SCALE if self.precision == "fp16" else 1.0)
        total = loss_real + loss_fake + cfg.lambda_cls * loss_cls + cfg.lambda_gp * loss_gp
        return total, {"D/loss_real": loss_real, "D/loss_fake": loss_fake, "D/loss_cls": loss_cls,
                       "D/loss_gp": loss_gp}

    def _apply_d(self, x_real, x_fake, label_org, alpha, global_batch_size, cls_loss):
        with tf.GradientTape() as tape:
            total, terms = self._d_loss(x_real, x_fake, label_org, alpha, global_batch_size, cls_loss)
            scaled = self._scaled(self.d_optimizer, total)
        grads = tape.gradient(scaled, self.D.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.D.trainable_variables, strict=True))
        return terms

    def _d_step(self, batch, cls_loss):
        batch = Batch.of(batch)
        x_fake = self.G([batch.image, batch.label_trg], training=True)
        return self._apply_d(batch.image, x_fake, batch.label_org, batch.alpha, self._global_batch(batch.image),
                             cls_loss)

    def _d_and_g_step(self, batch, cls_loss):
        """A critic update, then a generator update against the updated critic.

        G(x, c_trg) is computed once, under the generator's tape: the critic update uses it as a constant,
        and since G's weights do not change in between, this equals recomputing it for the G update.
        """
        cfg = self.config
        x_real, label_org, label_trg, alpha = Batch.of(batch)
        global_batch_size = self._global_batch(x_real)
        with tf.GradientTape() as g_tape:
            x_fake = self.G([x_real, label_trg], training=True)
            with g_tape.stop_recording():
                terms = self._apply_d(x_real, x_fake, label_org, alpha, global_batch_size, cls_loss)
            fake_src, fake_cls = self.D(x_fake, training=True)
            g_loss_fake = losses.g_adversarial_loss(fake_src, global_batch_size)
            g_loss_cls = cls_loss(fake_cls, label_trg, global_batch_size)
            x_rec = self.G([x_fake, label_org], training=True)
            g_loss_rec = losses.reconstruction_loss(x_real, x_rec, global_batch_size)
            g_total = g_loss_fake + cfg.lambda_rec * g_loss_rec + cfg.lambda_cls * g_loss_cls
            if cfg.lambda_id > 0:
                x_id = self.G([x_real, label_org], training=True)
                g_loss_id = losses.reconstruction_loss(x_real, x_id, global_batch_size)
                g_total += cfg.lambda_id * g_loss_id
            g_scaled = self._scaled(self.g_optimizer, g_total)
        grads = g_tape.gradient(g_scaled, self.G.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.G.trainable_variables, strict=True))
        terms.update({"G/loss_fake": g_loss_fake, "G/loss_rec": g_loss_rec, "G/loss_cls": g_loss_cls})
        if cfg.lambda_id > 0:
            terms["G/loss_id"] = g_loss_id
        return terms

    def _update_ema(self):
        """ema = d * ema + (1 - d) * G for every weight, in cross-replica context (G is the same on every replica,
        so each replica's copy of the average gets the same value); d follows `ema_decay_at`."""
        num_updates = (self.step + 1) // self.config.n_critic  # G updates so far, this one included
        decay = ema_decay_at(num_updates, self.config.g_ema_decay)
        for average, weight in zip(self.G_ema.weights, self.G.weights, strict=True):
            average.assign(decay * average.value + (1.0 - decay) * tf.cast(weight.value, tf.float32))

    def _distributed(self, replica_fn, cls_loss, update_ema=False):
        strategy = self.strategy

        def step(dist_batch):
            per_replica = strategy.run(functools.partial(replica_fn, cls_loss=cls_loss), args=(dist_batch,))
            reduced = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            if update_ema:
                with tf.control_dependencies(list(reduced.values())):
                    self._update_ema()
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32))) for v in reduced.values()])
            return reduced, finite

        return step

    # ------------------------------------------------------------------ public API
    def set_learning_rates(self, step):
        cfg = self.config
        g_lr = learning_rate_at(step, self.g_base_lr, cfg.num_iters, cfg.num_iters_decay, cfg.lr_update_step)
        d_lr = learning_rate_at(step, self.d_base_lr, cfg.num_iters, cfg.num_iters_decay, cfg.lr_update_step)
        self.g_optimizer.learning_rate.assign(g_lr)
        self.d_optimizer.learning_rate.assign(d_lr)
        return g_lr, d_lr

    def step_function(self, dataset, update_g):
        """The distributed step for batches of `dataset`, D only or D then G: batch -> its loss terms."""
        compiled = self._compiled(dataset, update_g)
        return lambda dist_batch: compiled(dist_batch)[0]

    def _compiled(self, dataset, update_g):
        """The compiled step: batch -> (loss terms, whether they are all finite), the check made in the graph."""
        key = (dataset, update_g)
        if key not in self._fns:
            replica_fn = self._d_and_g_step if update_g else self._d_step
            step = self._distributed(replica_fn, classification_loss_for(self.layout, dataset),
                                     update_ema=update_g and self.G_ema is not None)
            # No AutoGraph: the step has no tensor-dependent Python control flow; the rewrite costs a process 1 s.
            self._fns[key] = tf.function(step, jit_compile=self.jit_compile, autograph=False)
        return self._fns[key]

    def train_step(self, dist_batches):
        """One official iteration (0-based `self.step`) over `{dataset: batch}`: for each dataset in order, D,
        then G when (step+1) % n_critic == 0. Loss names get a `<dataset>/` prefix when there are several.
        A loss term that is not finite raises NonFiniteLoss (the step counter stays at the last finite step)."""
        step = int(self.step.numpy())
        self.set_learning_rates(step)
        update_g = (step + 1) % self.config.n_critic == 0
        terms, finite = {}, []
        for dataset in self.layout.datasets:
            out, out_finite = self._compiled(dataset, update_g)(dist_batches[dataset])
            prefix = f"{dataset}/" if self.layout.has_mask else ""
            terms.update({prefix + k: v for k, v in out.items()})
            finite.append(out_finite)
        if not all(bool(f) for f in finite):  # read after every dataset's step is queued
            raise NonFiniteLoss(step + 1, {k: float(v) for k, v in terms.items() if not math.isfinite(float(v))})
        self.step.assign_add(1)
        return terms

    def reset_ema(self):
        """Start the moving average from G's current weights (a new run, or a checkpoint saved without one)."""
        for average, weight in zip(self.G_ema.weights, self.G.weights, strict=True):
            average.assign(tf.cast(weight.value, tf.float32))

    @property
    def sampler(self):
        """The generator that samples, tests and exports use: the moving average when enabled, else G."""
        return self.G_ema if self.G_ema is not None else self.G

    def checkpoint(self, with_ema=True):
        """A `tf.train.Checkpoint` of everything training needs to continue exactly (the EMA too, if any)."""
        return training_checkpoint(self.G, self.D, self.g_optimizer, self.d_optimizer, self.step,
                                   self.G_ema if with_ema else None)
