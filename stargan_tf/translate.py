"""Translate your own photos with an export (or a checkpoint directory).

  python -m stargan_tf.translate --export_dir OUT --input photo.jpg [more files or folders]
      --source Black_Hair=1,Male=1,Young=1 --set Blond_Hair=1 --set Male=0 --output DIR [--grid]
      [--overwrite] [--max_pixels N]

`--source` gives the photo's own attributes (default: all 0); `--set` changes them (setting one member of
an exclusive group, such as a hair colour, clears the others). `--grid` writes one grid per photo: the
input, then one column per single-attribute change.

Outputs are named after the inputs: `d.jpg` -> `d.png` (`d-grid.png` with --grid). Inputs sharing a name
apart from the extension keep it, so none overwrites another: `d.jpg` and `d.png` -> `d-jpg.png` and
`d-png.png`; a name still taken gets -2, -3, ... in input order. Existing files are only replaced with
--overwrite, and that is checked for every output before any is written.

`--max_pixels`: images whose header declares more pixels (width x height) are refused before decoding
(default: the export's own budget, or 50,000,000).
"""

import argparse
import io
import os
import sys
from collections import Counter

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from stargan_tf import domains, images
from stargan_tf.data import DECODABLE, MAX_PIXELS
from stargan_tf.serving import decode_square


class Translator:
    """Labels by name and a `translate_bytes` function, from an export or a checkpoint directory."""

    def __init__(self, translate_bytes, names, groups, owners, image_size, max_pixels=None):
        self._translate_bytes = translate_bytes
        self.image_size = int(image_size)
        self.max_pixels = None if max_pixels is None else int(max_pixels)  # None: an export older than the budget
        self.layout = domains.LabelLayout.from_metadata(list(names), list(groups), list(owners))
        self.names = [n for n, o in zip(names, owners, strict=True) if o != domains.MASK]

    @classmethod
    def from_export(cls, export_dir):
        path = resolve_export(export_dir)
        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["translate_bytes"]
        return cls(lambda b, c: fn(image_bytes=b, label=c)["image_bytes"], *_metadata(loaded.signatures["metadata"]))

    @classmethod
    def from_checkpoint(cls, model_save_dir, step="latest", which="auto", max_pixels=MAX_PIXELS):
        from stargan_tf.checkpoints import restore_generator
        from stargan_tf.export import build_server

        generator, config, _ = restore_generator(model_save_dir, step, which)
        server = build_server(generator, config, max_pixels)
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
            meta["image_size"], meta.get("max_pixels"))


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
    """Files as given, and the image files inside any folder given (sorted); a file given twice counts once."""
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
    unique = {}
    for f in files:
        unique.setdefault(os.path.realpath(f), f)
    return list(unique.values())


def output_names(files, suffix):
    """One distinct file name per input (module docstring): `<stem><suffix>`, `<stem>-<ext><suffix>` for stems
    shared by several inputs, then -2, -3, ... for a name still taken. Compared case-blind, as some file systems."""
    parts = [os.path.splitext(os.path.basename(f)) for f in files]
    stems = Counter(stem.casefold() for stem, _ in parts)
    names, taken = [], set()
    for stem, ext in parts:
        base = stem if stems[stem.casefold()] == 1 else f"{stem}-{ext.lstrip('.').lower()}"
        name, number = base + suffix, 1
        while name.casefold() in taken:
            number += 1
            name = f"{base}-{number}{suffix}"
        taken.add(name.casefold())
        names.append(name)
    return names


def check_outputs(files, outputs, overwrite):
    """Before anything is written: no output may replace an input, nor an existing file without `overwrite`."""
    inputs = {os.path.realpath(f) for f in files}
    for out in outputs:
        if os.path.realpath(out) in inputs:
            raise ValueError(f"{out} is also an input; choose another --output")
    existing = [out for out in outputs if os.path.lexists(out)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more output(s))" if len(existing) > 1 else ""
        raise ValueError(f"{existing[0]} already exists{more}; pass --overwrite to replace")


def read_image(path, max_pixels=MAX_PIXELS):
    """The file's bytes, checked to be a JPEG/PNG/GIF/BMP image of at most `max_pixels` pixels first (the size
    from its header, before any pixel is decoded), so a clear error names a file that is not one or too large."""
    with open(path, "rb") as f:
        payload = f.read()
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the budget below replaces PIL's bomb check
    try:
        with Image.open(io.BytesIO(payload)) as image:
            width, height = image.size
            if image.format not in ("JPEG", "MPO", "PNG", "GIF", "BMP"):  # MPO: a JPEG with extra views
                raise ValueError(f"{path}: {image.format} images cannot be translated; convert to PNG or JPEG")
            if width * height > max_pixels:
                raise ValueError(f"{path}: {width} x {height} = {width * height:,} pixels exceeds the budget of "
                                 f"{max_pixels:,} pixels (--max_pixels)")
            image.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return payload


def _reason(error):
    """The failed assertion's message of a TF error as one sentence, without the graph trace around it."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()] or [type(error).__name__]
    found = next((line for line in lines if line.startswith("assertion failed: [")), None)
    if found is None:
        return lines[0]
    return found.removeprefix("assertion failed: [").removesuffix("]").replace("] [", " ")


def pixel_budget(translator, requested):
    """--max_pixels, or the translator's own budget; above an export's own budget the export would refuse."""
    if requested is None:
        return translator.max_pixels or MAX_PIXELS
    if requested < 1:
        raise ValueError(f"--max_pixels must be a positive integer, got {requested}")
    if translator.max_pixels is not None and requested > translator.max_pixels:
        raise ValueError(f"--max_pixels {requested:,} is above the export's budget of {translator.max_pixels:,} "
                         "pixels; export again with export.py --max_pixels")
    return requested


def run(args):
    if bool(args.export_dir) == bool(args.model_save_dir):
        raise ValueError("give exactly one of --export_dir or --model_save_dir")
    if os.path.isfile(args.output):
        raise ValueError(f"--output {args.output} is a file, expected a folder")
    files = collect_inputs(args.input)
    targets = [os.path.join(args.output, n) for n in output_names(files, "-grid.png" if args.grid else ".png")]
    check_outputs(files, targets, args.overwrite)
    translator = (Translator.from_export(args.export_dir) if args.export_dir
                  else Translator.from_checkpoint(args.model_save_dir, args.test_iters, args.generator,
                                                  args.max_pixels or MAX_PIXELS))
    budget = pixel_budget(translator, args.max_pixels)
    source_pairs = [p for text in args.source for p in parse_assignments(text, "--source")]
    set_pairs = [p for text in args.set for p in parse_assignments(text, "--set")]
    source_dataset, source, target_dataset, target = translator.labels(source_pairs, set_pairs)
    layout = translator.layout
    written = []
    for path, target_path in zip(files, targets, strict=True):
        payload = read_image(path, budget)
        try:
            if args.grid:
                labels = np.concatenate(layout.targets(source_dataset, source[None]), axis=0)
                outputs = translator.translate([payload] * len(labels), labels)
                columns = [images.to_uint8(decode_square(tf.constant(payload), translator.image_size, budget).numpy())]
                columns += [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in outputs]
                out = images.save_png(target_path, np.concatenate(columns, axis=1))
            else:
                png = translator.translate([payload], layout.encode(target_dataset, target[None]))[0]
                out = images.write_atomic(target_path, png)
        except tf.errors.InvalidArgumentError as e:  # what PIL's look at the header cannot see, e.g. GIF frames
            raise ValueError(f"{path}: {_reason(e)}") from None
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
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="refuse images whose header declares more pixels (default: the export's budget)")
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
