"""Translate your own photos with an export (or a checkpoint directory).

  python -m stargan_tf.translate --export_dir OUT --input photo.jpg [more files or folders]
      --source Black_Hair=1,Male=1,Young=1 --set Blond_Hair=1 --set Male=0 --output DIR [--grid]

`--source` gives the photo's own attributes (default: all 0); `--set` changes them (setting one member of
an exclusive group, such as a hair colour, clears the others). `--grid` writes one grid per photo: the
input, then one column per single-attribute change.
"""

import argparse
import io
import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from stargan_tf import domains, images
from stargan_tf.data import DECODABLE
from stargan_tf.serving import decode_square


class Translator:
    """Labels by name and a `translate_bytes` function, from an export or a checkpoint directory."""

    def __init__(self, translate_bytes, names, groups, owners, image_size):
        self._translate_bytes = translate_bytes
        self.image_size = int(image_size)
        self.layout = domains.LabelLayout.from_metadata(list(names), list(groups), list(owners))
        self.names = [n for n, o in zip(names, owners, strict=True) if o != domains.MASK]

    @classmethod
    def from_export(cls, export_dir):
        path = resolve_export(export_dir)
        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["translate_bytes"]
        return cls(lambda b, c: fn(image_bytes=b, label=c)["image_bytes"], *_metadata(loaded.signatures["metadata"]))

    @classmethod
    def from_checkpoint(cls, model_save_dir, step="latest", which="auto"):
        from stargan_tf.checkpoints import restore_generator
        from stargan_tf.export import build_server

        generator, config, _ = restore_generator(model_save_dir, step, which)
        server = build_server(generator, config)
        return cls(lambda b, c: server.translate_bytes(b, c)["image_bytes"], *_metadata(server.metadata))

    def translate(self, image_bytes, labels):
        """PNG bytes of `image_bytes` translated to each row of `labels` (float32 (N, c_dim))."""
        out = self._translate_bytes(tf.constant(image_bytes), tf.constant(np.asarray(labels, np.float32)))
        return [bytes(b) for b in out.numpy()]

    def dataset_of(self, name):
        """The dataset whose part of the label holds `name`; a ValueError lists the valid names."""
        for dataset, spec in self.layout.parts:
            if name in spec.names:
                return dataset
        raise ValueError(f"unknown attribute {name!r}; valid names: {', '.join(self.names)}")

    def labels(self, source_pairs, set_pairs):
        """(dataset, source part label, target part label) from --source and --set assignments.

        The photo's dataset is the one its names come from (the first dataset when none are given); with a
        joint model, --set may name the other dataset's domains, and then the target uses that part.
        """
        def assign(dataset, base, pairs):
            spec = self.layout.spec(dataset)
            label = np.asarray(base, np.float32)[None]
            for name, value in pairs:
                label = domains.set_attribute(spec, label, spec.index(name), value)
            return label[0]

        def single_dataset(pairs, option):
            found = {self.dataset_of(name) for name, _ in pairs}
            if len(found) > 1:
                raise ValueError(f"{option} mixes names of {' and '.join(sorted(found))}; a label holds one dataset")
            return found.pop() if found else None

        source_dataset = single_dataset(source_pairs, "--source") or self.layout.datasets[0]
        target_dataset = single_dataset(set_pairs, "--set") or source_dataset
        source = assign(source_dataset, np.zeros(self.layout.spec(source_dataset).dim), source_pairs)
        target_base = source if target_dataset == source_dataset else np.zeros(self.layout.spec(target_dataset).dim)
        return source_dataset, source, target_dataset, assign(target_dataset, target_base, set_pairs)


def _metadata(metadata_fn):
    meta = {k: v.numpy() for k, v in metadata_fn().items()}
    decode = lambda values: [v.decode() for v in values]  # noqa: E731
    return (decode(meta["attribute_names"]), meta["exclusive_group"].tolist(), decode(meta["label_dataset"]),
            meta["image_size"])


def resolve_export(export_dir):
    """An export folder, or a TF Serving base path whose highest numbered version is used."""
    if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    versions = sorted(int(d) for d in os.listdir(export_dir) if d.isdigit()) if os.path.isdir(export_dir) else []
    if not versions:
        raise FileNotFoundError(f"--export_dir {export_dir}: no saved_model.pb and no numbered version folder")
    return os.path.join(export_dir, str(versions[-1]))


def parse_assignments(text, option):
    """'A=1,B=0' -> [('A', 1.0), ('B', 0.0)], with values checked to lie in [0, 1]."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{option} {item!r}: expected NAME=VALUE, for example Blond_Hair=1")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{option} {item!r}: {value!r} is not a number") from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{option} {item!r}: values must lie in [0, 1], got {number:g}")
        pairs.append((name.strip(), number))
    return pairs


def collect_inputs(inputs):
    """Files as given, and the image files inside any folder given (sorted)."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(DECODABLE))
            if not found:
                raise FileNotFoundError(f"--input {item}: folder holds no {'/'.join(DECODABLE)} files")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"--input {item}: no such file or folder")
    return files


def read_image(path):
    """The file's bytes, checked to be an image first, so a clear error names a file that is not one."""
    with open(path, "rb") as f:
        payload = f.read()
    try:
        Image.open(io.BytesIO(payload)).load()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    return payload


def run(args):
    if bool(args.export_dir) == bool(args.model_save_dir):
        raise ValueError("give exactly one of --export_dir or --model_save_dir")
    translator = (Translator.from_export(args.export_dir) if args.export_dir
                  else Translator.from_checkpoint(args.model_save_dir, args.test_iters, args.generator))
    source_pairs = [p for text in args.source for p in parse_assignments(text, "--source")]
    set_pairs = [p for text in args.set for p in parse_assignments(text, "--set")]
    source_dataset, source, target_dataset, target = translator.labels(source_pairs, set_pairs)
    layout = translator.layout
    files = collect_inputs(args.input)
    written = []
    for path in files:
        payload = read_image(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        if args.grid:
            labels = np.concatenate(layout.targets(source_dataset, source[None]), axis=0)
            outputs = translator.translate([payload] * len(labels), labels)
            columns = [images.to_uint8(decode_square(tf.constant(payload), translator.image_size).numpy())]
            columns += [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in outputs]
            out = images.save_png(os.path.join(args.output, f"{stem}-grid.png"), np.concatenate(columns, axis=1))
        else:
            png = translator.translate([payload], layout.encode(target_dataset, target[None]))[0]
            out = images.write_atomic(os.path.join(args.output, f"{stem}.png"), png)
        written.append(out)
        print(f"{path} -> {out}")
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--export_dir", help="SavedModel written by export.py (a version folder or its parent)")
    parser.add_argument("--model_save_dir", help="or: a train.py checkpoint directory")
    parser.add_argument("--test_iters", default="latest", help="checkpoint step with --model_save_dir")
    parser.add_argument("--generator", choices=("auto", "ema", "raw"), default="auto",
                        help="with --model_save_dir: the moving average of G (ema), the trained G (raw), or auto")
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders of images")
    parser.add_argument("--source", action="append", default=[], help="the photos' attributes, e.g. Male=1,Young=1")
    parser.add_argument("--set", action="append", default=[], help="attribute changes, e.g. Blond_Hair=1")
    parser.add_argument("--output", required=True, help="folder for the translated PNGs")
    parser.add_argument("--grid", action="store_true", help="write one grid per photo over every single change")
    args = parser.parse_args(argv)
    if args.test_iters != "latest":
        args.test_iters = int(args.test_iters)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
