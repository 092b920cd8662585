"""Export a trained StarGAN generator as a TF Serving SavedModel: `python export.py --model_save_dir DIR
--export_dir OUT [--test_iters N|latest] [--version V] [--max_pixels N]` writes OUT/<version>/ (version: the
training step)."""

import argparse
import sys

from stargan_tf.config import parse_step


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--model_save_dir", required=True, help="directory with train.py's checkpoints and config.json")
    parser.add_argument("--test_iters", type=parse_step, default="latest", help="checkpoint step, or latest")
    parser.add_argument("--export_dir", required=True, help="TF Serving model base path; the export goes in a "
                                                            "numbered sub-folder")
    parser.add_argument("--version", type=int, default=None, help="version folder number (default: the step)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    parser.add_argument("--generator", choices=("auto", "ema", "raw"), default="auto",
                        help="the moving average of G (ema), the trained G (raw), or auto: ema when the checkpoint "
                             "holds one")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="largest image (width x height, read from its header) translate_bytes decodes; larger "
                             "ones fail with InvalidArgumentError before decoding (default: 50,000,000, a 48 MP "
                             "photo fits)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from stargan_tf.data import MAX_PIXELS
    from stargan_tf.export import directory_size, export_generator

    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    try:
        path = export_generator(args.model_save_dir, args.export_dir, args.test_iters, args.version, args.overwrite,
                                args.generator, max_pixels)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Exported SavedModel to {path} ({directory_size(path) / 1e6:.1f} MB, images up to {max_pixels:,} "
          "pixels); signatures: serving_default, translate_bytes, metadata")
    return 0


if __name__ == "__main__":
    sys.exit(main())
