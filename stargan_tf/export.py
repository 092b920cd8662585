"""Export a trained generator into TF Serving's numbered-version layout: `<export_dir>/<version>/`.

Command line (`stargan-export`, `python export.py`): `--model_save_dir DIR --export_dir OUT [--test_iters N|latest]
[--version V] [--max_pixels N] [--include_classifier] [--include_faces [--max_faces K]]` writes OUT/<version>/
(version: the training step). --include_classifier adds the `classify` signature and D's weights (translate --source
auto, the app); --include_faces adds the `edit_photo` signature and mtcnn's weights (needs the faces extra at export
time only), which edits every face of a whole photo (translate --align_faces runs it)."""

import argparse
import os
import shutil
import sys
import tempfile

from stargan_tf import domains, faces, preprocessing, serving
from stargan_tf.checkpoints import GENERATORS, restore_discriminator, restore_generator
from stargan_tf.cli import fail
from stargan_tf.config import parse_step


def directory_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


MAX_FACES = 8


def build_server(generator, config, max_pixels=preprocessing.MAX_PIXELS, discriminator=None, include_faces=False,
                 max_faces=MAX_FACES):
    """The servable generator (with D's `classify` when `discriminator` is given, `edit_photo` with mtcnn's weights
    when `include_faces`); its crop_size is the training crop of CelebA-layout images (folder datasets: theirs)."""
    detector = None
    if include_faces:
        if not isinstance(max_faces, int) or max_faces < 1:
            raise ValueError(f"--max_faces must be a positive integer, got {max_faces!r}")
        from stargan_tf.face_graph import FaceDetector

        detector = FaceDetector.from_mtcnn()
    names, groups, label_dataset = domains.layout_for(config).metadata()
    return serving.GeneratorServer(generator, names, config.image_size, groups, label_dataset, max_pixels,
                                   config.crop_size(config.dataset), discriminator, detector, max_faces)


def export_generator(model_save_dir, export_dir, step="latest", version=None, overwrite=False, which="auto",
                     max_pixels=preprocessing.MAX_PIXELS, include_classifier=False, include_faces=False,
                     max_faces=MAX_FACES):
    """Restore G at `step` and write a SavedModel to `export_dir/<version>` (default: the training step).

    `which` generator: 'auto' (the moving average when the checkpoint holds one, else G), 'ema' or 'raw'.
    `max_pixels`: the largest image (width x height, from its header) `translate_bytes` decodes.
    `include_classifier`: also store D (same step) and its `classify` signature; by default the export holds G only.
    `include_faces`: also store mtcnn's weights and the `edit_photo` signature, editing at most `max_faces` faces.

    The SavedModel is written into a hidden temporary folder beside the target and renamed into place
    when complete, so TF Serving (which only loads integer-named folders) never sees half an export.
    """
    preprocessing.check_max_pixels(max_pixels)
    if include_faces and (not isinstance(max_faces, int) or max_faces < 1):
        raise ValueError(f"--max_faces must be a positive integer, got {max_faces!r}")
    generator, config, restored_step = restore_generator(model_save_dir, step, which)
    discriminator = restore_discriminator(model_save_dir, restored_step, config) if include_classifier else None
    version = restored_step if version is None else version
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"--version must be a non-negative integer (TF Serving's version folders), got {version!r}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --version with a new number or --overwrite")
    os.makedirs(export_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        server = build_server(generator, config, max_pixels, discriminator, include_faces, max_faces)
        serving.save(server, os.path.join(tmp, "model"))
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=export_dir)
            os.replace(target, os.path.join(old, "model"))
            os.replace(os.path.join(tmp, "model"), target)
            shutil.rmtree(old)
        else:
            os.replace(os.path.join(tmp, "model"), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_save_dir", required=True, help="directory with train.py's checkpoints and config.json")
    parser.add_argument("--test_iters", type=parse_step, default="latest", help="checkpoint step, or latest")
    parser.add_argument("--export_dir", required=True, help="TF Serving model base path; the export goes in a "
                                                            "numbered sub-folder")
    parser.add_argument("--version", type=int, default=None, help="version folder number (default: the step)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    parser.add_argument("--generator", choices=GENERATORS, default="auto",
                        help="the moving average of G (ema), the trained G (raw), or auto: ema when the checkpoint "
                             "holds one")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="largest image (width x height, read from its header) translate_bytes decodes; larger "
                             "ones fail with InvalidArgumentError before decoding (default: 50,000,000, a 48 MP "
                             "photo fits)")
    parser.add_argument("--include_classifier", action="store_true",
                        help="also export D's classification head as the `classify` signature (the photo's own "
                             "attributes, for translate --source auto and the app); adds D's weights: 179 MB "
                             "for the paper's 128x128 model, whose G takes 34 MB")
    parser.add_argument("--include_faces", action="store_true",
                        help="also export the `edit_photo` signature: every face of a whole photo found (mtcnn, "
                             "its weights baked in), aligned, translated and pasted back, in the graph (needs the "
                             f"faces extra to export, TensorFlow only to serve: {faces.INSTALL_HINT})")
    parser.add_argument("--max_faces", type=int, default=MAX_FACES,
                        help=f"with --include_faces: faces edited per photo at most, the best scored (default "
                             f"{MAX_FACES}); others are left untouched and counted")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    max_pixels = preprocessing.MAX_PIXELS if args.max_pixels is None else args.max_pixels
    try:
        path = export_generator(args.model_save_dir, args.export_dir, args.test_iters, args.version, args.overwrite,
                                args.generator, max_pixels, args.include_classifier, args.include_faces,
                                args.max_faces)
    except (FileNotFoundError, FileExistsError, ValueError, faces.FacesExtraMissing) as e:
        return fail(e)
    signatures = "serving_default, translate_bytes, metadata" + (", classify" if args.include_classifier else "")
    signatures += f", edit_photo (up to {args.max_faces} faces)" if args.include_faces else ""
    print(f"Exported SavedModel to {path} ({directory_size(path) / 1e6:.1f} MB, images up to {max_pixels:,} "
          f"pixels); signatures: {signatures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
