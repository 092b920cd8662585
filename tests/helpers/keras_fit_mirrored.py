"""Fit StarGAN for 4 steps on one device and, from the same weights on the same global batches, mirrored over 2
logical CPUs, with plain SGD (a weight change is the rate times the gradient); print as JSON, per model, how far the
mirrored weight change is from the single-device one, relative to that change. Usage: keras_fit_mirrored.py DATA_DIR."""

import json
import sys

from stargan_tf import distribute

distribute.split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from stargan_tf import data  # noqa: E402
from stargan_tf.config import StarGANConfig  # noqa: E402
from stargan_tf.demo_data import generate_demo_dataset  # noqa: E402
from stargan_tf.stargan import StarGAN  # noqa: E402

image_dir, attr_path = generate_demo_dataset(sys.argv[1], num_images=40, seed=0)
config = StarGANConfig(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=8,
                       mixed_precision="off", num_iters=4, num_iters_decay=2, lr_update_step=1, g_ema_decay=0.5,
                       seed=3, test_size=4).validate()
(paths, labels), _ = data.celeba_files(image_dir, attr_path, config.selected_attrs, config.test_size)
mirrored = distribute.make_strategy("mirrored")


def batches(model):
    return data.train_dataset(paths, labels, config.celeba_crop_size, config.image_size, config.batch_size,
                              seed=config.seed, labels_to_model=lambda part: model.layout.encode("CelebA", part))


def flat(weights):
    return np.concatenate([np.asarray(w, np.float64).ravel() for w in weights])


def rel(a_weights, b_weights, start):
    """|a - b| / |b - start| over all weights of a model as one vector."""
    a, b, start = flat(a_weights), flat(b_weights), flat(start)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b - start))


def moved(weights, start):
    """|weights - start| / |start| over all weights of a model as one vector."""
    return float(np.linalg.norm(flat(weights) - flat(start)) / np.linalg.norm(flat(start)))


keras.utils.set_random_seed(1)
single = StarGAN(config)
single.compile(g_optimizer=keras.optimizers.SGD(1e-3), d_optimizer=keras.optimizers.SGD(1e-3))
with mirrored.scope():
    multi = StarGAN(config)
    multi.compile(g_optimizer=keras.optimizers.SGD(1e-3), d_optimizer=keras.optimizers.SGD(1e-3))
multi.set_weights(single.get_weights())
start = {name: getattr(single, name).get_weights() for name in ("generator", "discriminator")}
start["generator_ema"] = start["generator"]
for model in (single, multi):
    model.fit(batches(model), epochs=2, steps_per_epoch=2, verbose=0)
print(json.dumps({"replicas": multi.trainer.strategy.num_replicas_in_sync,
                  "same_strategy": multi.trainer.strategy is multi.distribute_strategy is mirrored,
                  "steps": [int(single.step.numpy()), int(multi.step.numpy())],
                  "g_iterations": [int(m.g_optimizer.iterations.numpy()) for m in (single, multi)],
                  **{name: rel(getattr(multi, name).get_weights(), getattr(single, name).get_weights(), start[name])
                     for name in ("generator", "discriminator", "generator_ema")},
                  "generator_moved": moved(single.generator.get_weights(), start["generator"])}))
