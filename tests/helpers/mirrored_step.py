"""Run one D step and one D+G step with MirroredStrategy over 2 logical CPUs and on one device, on the same
global batch and random draws, from the same weights, in float32 and bfloat16; print JSON: per model, how far the
mirrored weight change is from the single-device one, relative to that change (with plain SGD, so that a weight
change is the learning rate times the gradient), and whether the moving average of G follows its formula. In
bfloat16 a one-device run on the batch with its halves swapped gives what another order of the same sums costs."""

import json

from stargan_tf import distribute

distribute.split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from stargan_tf import models  # noqa: E402
from stargan_tf.config import StarGANConfig  # noqa: E402
from stargan_tf.layers import PatchConv2D  # noqa: E402
from stargan_tf.training import StarGANTrainer  # noqa: E402

models.PATCH_GEMM_MIN_WEIGHTS_PER_PIXEL = 512  # so that this small D has patch-GEMM layers too (conv3-conv5)
SGD_RATE = 1e-3  # small enough that the second iteration's gradients stay close to the first's

rng = np.random.default_rng(0)
halves = []
for _ in range(2):  # each replica's half: its own target permutation and interpolation draws
    label = (rng.random((4, 5)) > 0.5).astype(np.float32)
    halves.append({"image": rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32), "label_org": label,
                   "label_trg": label[rng.permutation(4)], "alpha": rng.random((4, 1, 1, 1)).astype(np.float32)})
whole = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
swapped = {k: np.concatenate([h[k] for h in halves[::-1]]) for k in halves[0]}  # the same images, another order
mirrored = distribute.make_strategy("mirrored")
assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync


def flat(weights):
    """A model's weights as one float64 vector."""
    return np.concatenate([np.asarray(w, np.float64).ravel() for w in weights])


def config_for(precision):
    return StarGANConfig(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=8,
                         mixed_precision=precision, n_critic=2, g_ema_decay=0.5, jit_compile=False).validate()


def trainers(precision, optimizer):
    """(single-device, mirrored) trainers with the seed-1 initial weights; `optimizer()` makes each optimizer."""
    keras.utils.set_random_seed(1)
    single = StarGANTrainer.from_config(config_for(precision), g_optimizer=optimizer(), d_optimizer=optimizer())
    with mirrored.scope():
        g_optimizer, d_optimizer = optimizer(), optimizer()
    multi = StarGANTrainer.from_config(single.config, strategy=mirrored, g_optimizer=g_optimizer,
                                       d_optimizer=d_optimizer)
    multi.G.set_weights(single.G.get_weights())
    multi.D.set_weights(single.D.get_weights())
    multi.reset_ema()
    return single, multi


def two_iterations(single, multi):
    """Iteration 0 (D only) and 1 (D, then G: n_critic 2) on both; the loss terms of iteration 1 of each."""
    dist_batch = mirrored.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v) for k, v in halves[ctx.replica_id_in_sync_group].items()})
    for _ in range(2):
        terms_multi = multi.train_step({"CelebA": dist_batch})
        terms_single = single.train_step({"CelebA": {k: tf.constant(v) for k, v in whole.items()}})
    return ({k: float(v) for k, v in terms_single.items()}, {k: float(v) for k, v in terms_multi.items()})


def sgd_difference(precision, reorder=False):
    """|mirrored change - single change| / |single change| over all of G's, D's and the average's weights, and the
    mirrored average of G against its formula after the one G update. With `reorder`, also `order_<model>`: the same
    for a one-device run on the batch with its halves swapped, what another order of the same sums costs on this
    CPU's kernels."""
    single, multi = trainers(precision, lambda: keras.optimizers.SGD(SGD_RATE))
    g_start, d_start = multi.G.get_weights(), multi.D.get_weights()
    start = {"G": flat(g_start), "D": flat(d_start)}
    start["G_ema"] = start["G"]
    loss_single, loss_multi = two_iterations(single, multi)
    out = {"loss_single": loss_single, "loss_multi": loss_multi,
           "patch_layers": [layer.name for layer in multi.D.layers if isinstance(layer, PatchConv2D)],
           "replicas": mirrored.num_replicas_in_sync, "g_iterations": int(multi.g_optimizer.iterations.numpy()),
           # one G update (t = 1): decay min(0.5, 2 / 6) = 1 / 3 towards the mirrored G's new weights
           "G_ema_formula": max(float(np.abs(e - (1 / 3 * w0 + 2 / 3 * w1)).max()) for e, w0, w1 in zip(
               multi.G_ema.get_weights(), g_start, multi.G.get_weights(), strict=True)),
           "ema_dtypes": sorted({v.dtype for v in multi.G_ema.weights})}
    ends = {name: flat(getattr(single, name).get_weights()) for name in ("G", "D", "G_ema")}
    for name in ("G", "D", "G_ema"):
        a, b = flat(getattr(multi, name).get_weights()), ends[name]
        out[name] = float(np.linalg.norm(a - b) / np.linalg.norm(b - start[name]))
        out[f"{name}_moved"] = float(np.linalg.norm(b - start[name]) / np.linalg.norm(start[name]))
    if reorder:  # the one-device trainer again, from its start (SGD keeps no state but its count), already traced
        single.G.set_weights(g_start)
        single.D.set_weights(d_start)
        single.reset_ema()
        for variable in (single.step, single.g_optimizer.iterations, single.d_optimizer.iterations):
            variable.assign(0)
        out["same_start"] = all(np.array_equal(flat(getattr(single, name).get_weights()), start[name])
                                for name in ("G", "D", "G_ema"))
        for _ in range(2):
            single.train_step({"CelebA": {k: tf.constant(v) for k, v in swapped.items()}})
        for name in ("G", "D", "G_ema"):
            c, b = flat(getattr(single, name).get_weights()), ends[name]
            out[f"order_{name}"] = float(np.linalg.norm(c - b) / np.linalg.norm(b - start[name]))
    return out


print(json.dumps({"off": sgd_difference("off"), "bf16": sgd_difference("bf16", reorder=True)}))
