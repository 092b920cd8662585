"""Does the generator reach the target domain? An independent classifier judges translated test images.

The paper evaluates RaFD translations by the classification error of a classifier trained on real images
(Section 5.5). For a folder-per-class dataset:

  python -m stargan_tf.evaluation --model_save_dir DIR --train_dir data/train --test_dir data/test

trains a small CNN on the real training images, reports its accuracy on the real test images, then
translates every test image into every other class and reports how often the classifier assigns the
translation to the target class. The last line printed is one JSON object.
"""

import argparse
import json
import sys

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data
from stargan_tf.checkpoints import restore_generator
from stargan_tf.domains import layout_for


def load_images(paths, labels, crop_size, image_size, batch_size=64):
    """All images of a split as arrays: (images (N, S, S, 3) in [-1, 1], class indices (N,))."""
    xs, ys = [], []
    for x, y in data.eval_dataset(paths, labels, crop_size, image_size, batch_size):
        xs.append(x.numpy())
        ys.append(np.argmax(y.numpy(), axis=1))
    return np.concatenate(xs), np.concatenate(ys)


def build_classifier(image_size, num_classes):
    """A small CNN, independent of StarGAN's discriminator."""
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="independent_classifier")


def train_classifier(images, classes, num_classes, epochs=15, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_classifier(images.shape[1], num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images, classes, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return model


def accuracy(model, images, classes):
    predicted = np.argmax(model.predict(images, batch_size=64, verbose=0), axis=1)
    return float(np.mean(predicted == classes))


def translation_accuracy(generator, classifier, images, classes, num_classes, batch_size=64):
    """Fraction of (test image, other class) translations that the classifier assigns to the target class."""
    hits, total = 0, 0
    for target in range(num_classes):
        keep = classes != target
        if not keep.any():
            continue
        source = images[keep]
        label = np.zeros((len(source), num_classes), np.float32)
        label[:, target] = 1.0
        fake = np.concatenate([generator([source[i : i + batch_size], label[i : i + batch_size]],
                                         training=False).numpy() for i in range(0, len(source), batch_size)])
        predicted = np.argmax(classifier.predict(fake, batch_size=batch_size, verbose=0), axis=1)
        hits += int(np.sum(predicted == target))
        total += len(source)
    return hits / total, total


def evaluate(model_save_dir, train_dir, test_dir, step="latest", epochs=15, seed=0):
    generator, config, restored = restore_generator(model_save_dir, step)
    if config.dataset != "RaFD":
        raise ValueError(f"{model_save_dir} holds a --dataset {config.dataset} model; evaluation needs a folder "
                         "dataset (--dataset RaFD)")
    classes = layout_for(config).spec("RaFD").names
    train_paths, train_labels, train_classes = data.read_class_folders(train_dir, "--train_dir")
    test_paths, test_labels, test_classes = data.read_class_folders(test_dir, "--test_dir")
    for option, found in (("--train_dir", train_classes), ("--test_dir", test_classes)):
        if list(found) != list(classes):
            raise ValueError(f"{option} classes {', '.join(found)} differ from the model's {', '.join(classes)}")
    x_train, y_train = load_images(train_paths, train_labels, config.rafd_crop_size, config.image_size)
    x_test, y_test = load_images(test_paths, test_labels, config.rafd_crop_size, config.image_size)
    classifier = train_classifier(x_train, y_train, len(classes), epochs, seed)
    translated, count = translation_accuracy(generator, classifier, x_test, y_test, len(classes))
    return {"step": restored, "classes": list(classes), "classifier_real_test_accuracy": round(accuracy(
        classifier, x_test, y_test), 4), "translation_target_accuracy": round(translated, 4),
        "translations": count, "real_test_images": len(y_test)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_save_dir", required=True)
    parser.add_argument("--test_iters", default="latest")
    parser.add_argument("--train_dir", required=True, help="real training images, one folder per class")
    parser.add_argument("--test_dir", required=True, help="real test images, one folder per class")
    parser.add_argument("--epochs", type=int, default=15, help="classifier training epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    step = args.test_iters if args.test_iters == "latest" else int(args.test_iters)
    try:
        result = evaluate(args.model_save_dir, args.train_dir, args.test_dir, step, args.epochs, args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    sys.exit(main())
