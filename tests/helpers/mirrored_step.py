"""Run one D step and one D+G step with MirroredStrategy over 2 logical CPUs and on one device, on the same
global batch and random draws; print the largest relative weight difference per model as JSON."""

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

rng = np.random.default_rng(0)
halves = []
for _ in range(2):  # each replica's half: its own target permutation and interpolation draws
    label = (rng.random((4, 5)) > 0.5).astype(np.float32)
    halves.append({"image": rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32), "label_org": label,
                   "label_trg": label[rng.permutation(4)], "alpha": rng.random((4, 1, 1, 1)).astype(np.float32)})
whole = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
mirrored = distribute.make_strategy("mirrored")
assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync


def rel(a_model, b_model):
    worst = 0.0
    for a, b in zip(a_model.get_weights(), b_model.get_weights(), strict=True):
        worst = max(worst, float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)))
    return worst


def compare(precision):
    """Two iterations (D only, then D and G) on both strategies from the same weights."""
    config = StarGANConfig(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=8,
                           mixed_precision=precision, n_critic=2, g_ema_decay=0.5).validate()
    keras.utils.set_random_seed(1)
    single = StarGANTrainer.from_config(config)
    multi = StarGANTrainer.from_config(config, strategy=mirrored)
    multi.G.set_weights(single.G.get_weights())
    multi.D.set_weights(single.D.get_weights())
    multi.reset_ema()
    start = single.G.get_weights()
    dist_batch = mirrored.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v) for k, v in halves[ctx.replica_id_in_sync_group].items()})
    terms_multi, terms_single = {}, {}
    for _ in range(2):  # iteration 0: D only; iteration 1: D then G (n_critic 2)
        terms_multi = multi.train_step({"CelebA": dist_batch})
        terms_single = single.train_step({"CelebA": {k: tf.constant(v) for k, v in whole.items()}})
    return {"patch_layers": [layer.name for layer in multi.D.layers if isinstance(layer, PatchConv2D)],
            "replicas": mirrored.num_replicas_in_sync, "G": rel(multi.G, single.G), "D": rel(multi.D, single.D),
            "G_ema": rel(multi.G_ema, single.G_ema), "G_ema_moved": rel(single.G_ema, single.G),
            "G_ema_abs": max(float(np.abs(a - b).max()) for a, b in zip(multi.G_ema.get_weights(),
                                                                        single.G_ema.get_weights(), strict=True)),
            # one G update (t = 1): decay min(0.5, 2 / 6) = 1 / 3 towards the mirrored G's new weights
            "G_ema_formula": max(float(np.abs(e - (1 / 3 * w0 + 2 / 3 * w1)).max()) for e, w0, w1 in zip(
                multi.G_ema.get_weights(), start, multi.G.get_weights(), strict=True)),
            "ema_dtypes": sorted({v.dtype for v in multi.G_ema.weights}),
            "g_iterations": int(multi.g_optimizer.iterations.numpy()),
            "loss_multi": {k: float(v) for k, v in terms_multi.items()},
            "loss_single": {k: float(v) for k, v in terms_single.items()}}


print(json.dumps(compare("off") | {"bf16": compare("bf16")}))
