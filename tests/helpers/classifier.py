"""d_probabilities: D's class probabilities computed in Keras, the reference for the exported classifier."""

import numpy as np
import tensorflow as tf

from stargan_tf import serving


def d_probabilities(solver, payloads):
    """sigmoid of D's class logits on translate_bytes' preprocessing of each payload, computed in Keras."""
    x = np.stack([serving.decode_square(tf.constant(p), 32).numpy() for p in payloads])
    return tf.sigmoid(solver.D(x, training=False)[1]).numpy()
