"""Does the generator reach the target domain and keep the rest? Independent judges read translated test images.

The paper's protocol (Section 5.5) for the layouts StarGAN trains on:

  python -m stargan_tf.evaluation --model_save_dir DIR --train_dir data/train --test_dir data/test   # folders
  python -m stargan_tf.evaluation --model_save_dir DIR        # CelebA layout: the files and split of config.json

A judge (a small CNN, see `stargan_tf.measures`) is trained on the real training images, or loaded from
`DIR/judges/` when the same data was judged before, and its accuracy on the real test images is reported beside
what it reads in the translations: per-class target accuracy, a confusion matrix and the rate at which outputs
keep the source class (folders); per-attribute target accuracy and the preservation of the other attributes
(CelebA layout); reconstruction L1 / PSNR / SSIM of G(G(x, c), c_org) (both). The last line printed is one JSON
object (`--output` also writes it to a file).
"""

import argparse
import dataclasses
import json
import os
import sys

import numpy as np
import tensorflow as tf

from stargan_tf import measures
from stargan_tf.checkpoints import EMA_KEY, GENERATORS, checkpoint_path, generator_key, restore_generator
from stargan_tf.cli import fail
from stargan_tf.config import parse_step
from stargan_tf.domains import layout_for
from stargan_tf.files import write_atomic
from stargan_tf.streams import read_sources


def dataset_splits(config, args):
    """{dataset: ((train paths, labels), (test paths, labels), crop size)} for every dataset the model knows, read
    as train.py reads them (`streams.read_sources`) from the folders and files `args` name or config.json records."""
    layout = layout_for(config)
    if "RaFD" in layout.datasets and not (args.train_dir and args.test_dir):
        raise ValueError("a folder-dataset model needs --train_dir and --test_dir (real images, one folder per class)")
    config = dataclasses.replace(
        config, mode="test", rafd_image_dir=args.train_dir, rafd_classes=layout.spec("RaFD").names
        if "RaFD" in layout.datasets else None, celeba_image_dir=args.celeba_image_dir or config.celeba_image_dir,
        attr_path=args.attr_path or config.attr_path,
        test_size=config.test_size if args.test_size is None else args.test_size)
    sources, _ = read_sources(config, "--train_dir", args.test_dir, "--test_dir")
    for source in sources:
        if not len(source.test[0]):
            raise ValueError("the CelebA-layout test split is empty: pass --test_size 1 or more")
    return {source.name: (source.train, source.test, source.crop_size) for source in sources}


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def evaluate(args):
    generator, config, step = restore_generator(args.model_save_dir, args.test_iters, args.generator)
    key = generator_key(checkpoint_path(args.model_save_dir, step), args.generator)
    layout = layout_for(config)
    judge_dir = args.judge_dir or os.path.join(args.model_save_dir, "judges")
    results = {}
    for dataset, (train, test, crop) in dataset_splits(config, args).items():
        one_hot = layout.spec(dataset).one_hot
        judge, path, trained = measures.judge_for(judge_dir, dataset, one_hot, *train, crop, config.image_size,
                                                  args.epochs, args.seed, args.judge_images)
        print(f"{'Trained' if trained else 'Loaded'} the {dataset} judge: {path}", file=sys.stderr)
        x, labels = measures.load_split(*test, crop, config.image_size, limit=args.max_test_images, seed=args.seed)
        results[dataset] = {"dataset": dataset, "judge": path,
                            **measures.measure(generator, judge, layout, dataset, x, labels, args.batch_size)}
    head = {"step": step, "generator": "ema" if key == EMA_KEY else "raw"}
    if len(results) == 1:
        return _rounded({**head, **results.popitem()[1]})
    return _rounded({**head, **results})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model_save_dir", required=True, help="train.py's checkpoint directory")
    parser.add_argument("--test_iters", type=parse_step, default="latest", help="checkpoint step, or latest")
    parser.add_argument("--generator", choices=GENERATORS, default="auto",
                        help="the moving average of G (ema), the trained G (raw), or auto: ema when the checkpoint "
                             "holds one")
    parser.add_argument("--train_dir", help="folder dataset: real training images, one folder per class")
    parser.add_argument("--test_dir", help="folder dataset: real test images, one folder per class")
    parser.add_argument("--celeba_image_dir", help="CelebA layout: the images (default: from config.json)")
    parser.add_argument("--attr_path", help="CelebA layout: the attribute file (default: from config.json)")
    parser.add_argument("--test_size", type=int, default=None, help="CelebA layout: test images of the official "
                                                                     "split (default: from config.json)")
    parser.add_argument("--epochs", type=int, default=measures.DEFAULT_EPOCHS, help="judge training epochs")
    parser.add_argument("--judge_images", type=int, default=measures.DEFAULT_JUDGE_IMAGES,
                        help="train the judge on at most this many real training images (a seeded subset)")
    parser.add_argument("--judge_dir", help="where judges are cached (default: MODEL_SAVE_DIR/judges)")
    parser.add_argument("--max_test_images", type=int, default=None, help="translate a seeded subset of the test "
                                                                           "images (default: all)")
    parser.add_argument("--batch_size", type=int, default=256, help="images per generator call")
    parser.add_argument("--seed", type=int, default=0, help="seed of the judge's training and of subsets")
    parser.add_argument("--output", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    for name in ("epochs", "judge_images", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.max_test_images is not None and args.max_test_images < 1:
        parser.error(f"--max_test_images must be a positive integer, got {args.max_test_images}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        result = evaluate(args)
    except (ValueError, FileNotFoundError) as e:
        return fail(e)
    line = json.dumps(result)
    if args.output:
        write_atomic(args.output, (line + "\n").encode())
    print(line)
    return 0


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    np.set_printoptions(linewidth=200)
    sys.exit(main())
