"""The paper's evaluation measures: judge classifiers trained on real images, and what they say of translations.

A judge is a small CNN, independent of StarGAN's discriminator, trained on the real training images: a softmax
classifier for a folder dataset (the paper's RaFD protocol, Section 5.5) or a multi-label attribute classifier
for CelebA-layout data (the STGAN protocol). Every translated image is judged as the 8-bit image a user would
save. Measures, for each test image sent to each target domain:
  - target accuracy: the judge reads the target domain (a class, or the changed attribute's new value);
  - source kept (classes): the judge still reads the source class;
  - preservation (attributes): every attribute the target leaves unchanged reads as the judge read the input;
  - reconstruction: L1, PSNR and SSIM between x and G(G(x, c_trg), c_org), pixels scaled to [0, 1].
Judges are cached by a fingerprint of their training data and settings, so they are trained once.
"""

import hashlib
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data, domains, images

JUDGE_VERSION = 1  # part of the cache fingerprint: a change to the judge's recipe trains new judges
DEFAULT_EPOCHS = 15
DEFAULT_JUDGE_IMAGES = 60000  # training images a judge learns from at most (kept in memory as uint8)
PSNR_CAP_DB = 100.0  # the PSNR of an exact reconstruction is infinite; it counts as this


def load_split(paths, labels, crop_size, image_size, limit=None, seed=0, batch_size=64):
    """A split as (uint8 images (N, S, S, 3), labels (N, c)), preprocessed as in training (no flips).

    With `limit`, a seeded random subset of that many images, kept in file order.
    """
    paths, labels = list(paths), np.asarray(labels, np.float32)
    if limit is not None and limit < len(paths):
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:limit])
        paths, labels = [paths[i] for i in keep], labels[keep]
    batches = [images.to_uint8(x.numpy()) for x, _ in data.eval_dataset(paths, labels, crop_size, image_size,
                                                                          batch_size)]
    return np.concatenate(batches), labels


def build_classifier(image_size, num_outputs):
    """The judge: conv3x3-ReLU-maxpool blocks (16, 32, 64, then up to 128 filters; one block per halving down to
    4x4, at least three), global average pooling, one dense layer of logits. Takes 0-255 pixel values."""
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    filters = 16
    for _ in range(max(3, int(math.log2(image_size)) - 2)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        filters = min(2 * filters, 128)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inputs, outputs, name="judge")


def train_classifier(x, targets, multi_label=False, epochs=DEFAULT_EPOCHS, seed=0):
    """Train a judge on uint8 images: class indices (softmax) or 0/1 attribute rows (sigmoid per attribute)."""
    keras.utils.set_random_seed(seed)
    num_outputs = targets.shape[1] if multi_label else int(np.max(targets)) + 1
    model = build_classifier(x.shape[1], num_outputs)
    loss = (keras.losses.BinaryCrossentropy(from_logits=True) if multi_label
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(x, targets, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return model


def logits(model, x, batch_size=256):
    return model.predict(x, batch_size=batch_size, verbose=0)


def fingerprint(**facts):
    """A short hash of everything a judge depends on (its training files and labels, sizes, recipe)."""
    payload = json.dumps({"version": JUDGE_VERSION, **facts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def cached_judge(cache_dir, name, facts, load_training_data, multi_label, epochs=DEFAULT_EPOCHS, seed=0):
    """The judge stored in `cache_dir` for these facts, or a new one trained on `load_training_data()` and
    stored there (written under a temporary name and renamed, so a half-written judge is never loaded).

    Returns (model, path, trained_now).
    """
    key = fingerprint(multi_label=multi_label, epochs=epochs, seed=seed, **facts)
    path = os.path.join(cache_dir, f"{name}-{key}.keras")
    if os.path.exists(path):
        return keras.models.load_model(path, compile=False), path, False
    x, targets = load_training_data()
    model = train_classifier(x, targets, multi_label, epochs, seed)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = os.path.join(cache_dir, f".tmp-{os.getpid()}-{name}-{key}.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return model, path, True


def generate(generator, x, labels, batch_size=64):
    """G(x, c) in batches: x uint8 or float in [-1, 1] (N, S, S, 3), labels (N, dim) -> float32 in [-1, 1]."""
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 127.5 - 1.0
    labels = np.asarray(labels, np.float32)
    return np.concatenate([np.asarray(generator([x[i : i + batch_size], labels[i : i + batch_size]],
                                                training=False), np.float32)
                           for i in range(0, len(x), batch_size)])


class Reconstruction:
    """Running means over images of L1, PSNR (capped at 100 dB) and SSIM (`tf.image.ssim`: 11x11 Gaussian window)
    between real images and their reconstructions, pixels in [0, 1]."""

    def __init__(self):
        self.count, self.l1, self.psnr, self.ssim = 0, 0.0, 0.0, 0.0

    def add(self, real_uint8, rec):
        real = tf.constant(real_uint8, tf.float32) / 255.0
        rec = tf.clip_by_value((tf.constant(rec, tf.float32) + 1.0) / 2.0, 0.0, 1.0)
        self.count += len(real_uint8)
        self.l1 += float(tf.reduce_sum(tf.reduce_mean(tf.abs(real - rec), axis=[1, 2, 3])))
        self.psnr += float(tf.reduce_sum(tf.minimum(tf.image.psnr(real, rec, max_val=1.0), PSNR_CAP_DB)))
        self.ssim += float(tf.reduce_sum(tf.image.ssim(real, rec, max_val=1.0)))

    def result(self):
        n = max(self.count, 1)
        return {"reconstruction_l1": self.l1 / n, "reconstruction_psnr": self.psnr / n,
                "reconstruction_ssim": self.ssim / n}


def class_measures(generator, judge, layout, dataset, x, part_labels, batch_size=64):
    """Folder dataset: every test image into every other class. Returns the measures as a dict.

    `confusion_matrix[t][p]` counts translations to class t that the judge read as class p.
    """
    spec = layout.spec(dataset)
    k, source = spec.dim, np.argmax(part_labels, axis=1)
    real_pred = np.argmax(logits(judge, x), axis=1)
    confusion = np.zeros((k, k), np.int64)
    kept, rec = 0, Reconstruction()
    for target in range(k):
        keep = source != target
        if not keep.any():
            continue
        xs, org = x[keep], part_labels[keep]
        trg = np.zeros_like(org)
        trg[:, target] = 1.0
        fake = generate(generator, xs, layout.encode(dataset, trg), batch_size)
        predicted = np.argmax(logits(judge, images.to_uint8(fake)), axis=1)
        confusion[target] += np.bincount(predicted, minlength=k)
        kept += int(np.sum(predicted == source[keep]))
        rec.add(xs, generate(generator, fake, layout.encode(dataset, org), batch_size))
    total = int(confusion.sum())
    per_class = {name: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
                 for i, name in enumerate(spec.names)}
    return {"classes": list(spec.names), "real_test_images": len(x),
            "classifier_real_test_accuracy": float(np.mean(real_pred == source)),
            "translations": total, "translation_target_accuracy": float(np.trace(confusion) / max(total, 1)),
            "per_class_target_accuracy": per_class, "source_kept_rate": kept / max(total, 1),
            "confusion_matrix": {"rows": "target class", "columns": "class the judge read",
                                 "counts": confusion.tolist()},
            **rec.result()}


def attribute_measures(generator, judge, layout, dataset, x, part_labels, batch_size=64):
    """CelebA layout: every test image with each attribute changed as the official `create_labels` does (a
    hair colour set, any other attribute flipped). Returns the measures as a dict.

    Preservation compares, for every attribute the target leaves as it was, the judge's reading of the
    translation with its reading of the input, so that the judge's own errors on real images do not count.
    """
    spec = layout.spec(dataset)
    real_read = logits(judge, x) > 0
    targets = domains.target_labels(spec, part_labels)
    per_target, per_preserved, rec = {}, {}, Reconstruction()
    kept_total = kept_count = 0
    for i, (name, trg) in enumerate(zip(spec.names, targets, strict=True)):
        fake = generate(generator, x, layout.encode(dataset, trg), batch_size)
        read = logits(judge, images.to_uint8(fake)) > 0
        per_target[name] = float(np.mean(read[:, i] == (trg[:, i] > 0.5)))
        unchanged = trg == part_labels
        unchanged[:, i] = False
        same = (read == real_read) & unchanged
        per_preserved[name] = float(same.sum() / unchanged.sum()) if unchanged.any() else None
        kept_total, kept_count = kept_total + int(same.sum()), kept_count + int(unchanged.sum())
        rec.add(x, generate(generator, fake, layout.encode(dataset, part_labels), batch_size))
    truth = part_labels > 0.5
    per_real = {name: float(np.mean(real_read[:, j] == truth[:, j])) for j, name in enumerate(spec.names)}
    return {"attributes": list(spec.names), "real_test_images": len(x),
            "classifier_real_test_accuracy": float(np.mean(list(per_real.values()))),
            "per_attribute_classifier_real_test_accuracy": per_real,
            "translations": len(x) * spec.dim,
            "translation_target_accuracy": float(np.mean(list(per_target.values()))),
            "per_attribute_target_accuracy": per_target,
            "attribute_preservation": kept_total / max(kept_count, 1),
            "per_attribute_preservation": per_preserved, **rec.result()}


def measure(generator, judge, layout, dataset, x, part_labels, batch_size=256):
    """The measures that fit `dataset`'s labels: classes (one-hot) or attributes. A Keras generator runs as one
    compiled function (about 1.4x faster than eager calls)."""
    if isinstance(generator, keras.Model):
        model = generator
        generator = tf.function(lambda inputs, training=False: model(inputs, training=False), autograph=False)
    fn = class_measures if layout.spec(dataset).one_hot else attribute_measures
    return fn(generator, judge, layout, dataset, x, part_labels, batch_size)


def judge_for(cache_dir, dataset_name, one_hot, train_paths, train_labels, crop_size, image_size,
              epochs=DEFAULT_EPOCHS, seed=0, limit=DEFAULT_JUDGE_IMAGES):
    """The cached (or newly trained) judge for a dataset's real training images: (model, path, trained_now)."""
    paths = list(train_paths)
    labels = np.asarray(train_labels, np.float32)
    facts = {"paths": paths, "labels": labels.tolist(), "crop_size": crop_size, "image_size": image_size,
             "limit": limit}

    def load():
        x, y = load_split(paths, labels, crop_size, image_size, limit=limit, seed=seed)
        return x, (np.argmax(y, axis=1) if one_hot else y)

    return cached_judge(cache_dir, dataset_name, facts, load, multi_label=not one_hot, epochs=epochs, seed=seed)


SCALARS = ("translation_target_accuracy", "source_kept_rate", "attribute_preservation",
           "classifier_real_test_accuracy", "reconstruction_l1", "reconstruction_psnr", "reconstruction_ssim")


def scalars(result, prefix="eval"):
    """The TensorBoard scalars of a measures dict: the summary numbers and the per-class/attribute ones."""
    out = {f"{prefix}/{k}": result[k] for k in SCALARS if k in result}
    for key in ("per_class_target_accuracy", "per_attribute_target_accuracy", "per_attribute_preservation"):
        for name, value in result.get(key, {}).items():
            if value is not None:
                out[f"{prefix}/{key}/{name}"] = value
    return out
