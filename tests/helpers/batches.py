"""make_batch: a random training batch (images in [-1, 1], labels, targets, alphas) for step tests."""

import numpy as np
import tensorflow as tf


def make_batch(seed, n=4, size=32, c_dim=5):
    rng = np.random.default_rng(seed)
    label = (rng.random((n, c_dim)) > 0.5).astype(np.float32)
    return {"image": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)),
            "label_org": tf.constant(label), "label_trg": tf.constant(label[rng.permutation(n)]),
            "alpha": tf.constant(rng.random((n, 1, 1, 1)).astype(np.float32))}
