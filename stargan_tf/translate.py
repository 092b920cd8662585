"""Translate your own photos with an export (or a checkpoint directory).

  python -m stargan_tf.translate --export_dir OUT --input photo.jpg [more files or folders]
      --source Black_Hair=1,Male=1,Young=1 --set Blond_Hair=1 --set Male=0 --output DIR [--grid | --strip NAME]
      [--align_faces [--min_face_confidence P] [--fallback_center_crop]] [--overwrite] [--max_pixels N]

`--source` gives the photo's own attributes (default: all 0); `--set` changes them. `--source auto` predicts them
with D's classifier, for each photo (each face with --align_faces), so `--set Blond_Hair=1` keeps gender and age:
it needs an export made with `export.py --include_classifier` (a checkpoint directory has D anyway). Predictions
are rounded to 0/1 (the most likely hair colour at 0.5 or more; a folder dataset's most likely class) and printed.
Values may be fractions in [0, 1] (`--set Blond_Hair=0.6`) and reach the model as given. Setting v on a member of
an exclusive group (a hair colour) scales the group's other members by (1 - v): v = 1 clears them, and from
Black_Hair=1 `--set Blond_Hair=0.6` gives 0.4 black and 0.6 blond. `--grid` writes one grid per photo: the input,
then one column per single-attribute change. `--strip NAME` writes one strip per photo: the input, then the --set
label with NAME at 0, 0.25, 0.5, 0.75 and 1. Both are saved under a header row naming each column, enlarged (nearest
neighbour) --view_scale times (0, the default: until a column is at least 96 pixels wide).

Without --align_faces (the default) the model sees the photo's largest centred square (of the photo turned upright
by its EXIF orientation), resized: right for photos already cropped like the training images (CelebA's aligned
178 x 218 faces) and for folder datasets. Folder entries that are not regular files (a FIFO) are skipped, named.
`--align_faces` (needs the faces extra: pip install -e ".[faces]" in the clone) finds every face with mtcnn (confidence
>= --min_face_confidence, default 0.95), aligns each as CelebA did (the model's own training crop), translates it
and pastes it back into the full-size photo (turned upright by its EXIF orientation, as viewers show it); pixels
outside the feathered faces keep their bytes. With --grid or --strip it writes instead one row per face of aligned
crops at the model's size (full photos side by side would be huge and show the change small). It is opt-in, not
the default for CelebA-layout models, because it needs the extra and changes what is written (full photos, not
model-size squares). A photo where no face is found stops the run, naming the file, before anything is written;
with --fallback_center_crop its centre square is translated instead. With an export made with
`export.py --include_faces` (or a checkpoint directory) the whole edit of one photo, detection to the blended PNG,
is the export's `edit_photo` graph (`edit_photo_auto` with --source auto, when the export has the classifier too), so
the CLI writes the bytes TF Serving returns. --grid, --strip, a joint model's --source auto, a --min_face_confidence
other than 0.95 and exports without edit_photo run the same detection, alignment and paste-back functions
(stargan_tf.face_graph) in-process around the model's translate_bytes; the detector's weights are the export's
own when it has them, else the faces extra's. Either way each photo with a face is decoded once.

Outputs are named after the inputs: `d.jpg` -> `d.png` (`d-grid.png` with --grid, `d-strip.png` with --strip).
Inputs sharing a name apart from the extension keep it, so none overwrites another: `d.jpg` and `d.png` ->
`d-jpg.png` and `d-png.png`; a name still taken gets -2, -3, ... in input order. Existing files are only replaced
with --overwrite, and that is checked for every output before any is written.

`--max_pixels`: images whose header declares more pixels (width x height) are refused before decoding
(default: the export's own budget, or 50,000,000).
"""

import argparse
import io
import os
import stat
import sys
import tempfile
from collections import Counter

import numpy as np
import tensorflow as tf
from PIL import Image

from stargan_tf import face_graph, faces, images, preprocessing
from stargan_tf.cli import fail, reason
from stargan_tf.files import write_atomic
from stargan_tf.preprocessing import DECODABLE
from stargan_tf.serving import decode_square
from stargan_tf.translator import (
    NO_CLASSIFIER,
    add_model_options,
    check_model_choice,
    load_translator,
    pixel_budget,
    png_payloads,
    read_image,
)

STRIP_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


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


def file_kind(path):
    """What `path` is when not a regular file (reading a FIFO would wait for a writer forever), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a broken link" if os.path.islink(path) else "missing"
    kinds = [(stat.S_ISREG, None), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def collect_inputs(inputs):
    """Files as given, and the image files inside any folder given (sorted); a file given twice counts once.
    Entries of a folder that are not regular files (FIFOs, devices, broken links) are skipped, naming each."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found, skipped = [], []
            for path in sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(DECODABLE)):
                kind = file_kind(path)
                if kind:
                    skipped.append(f"{path} ({kind})")
                else:
                    found.append(path)
            if skipped:
                print(f"--input {item}: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} that are "
                      f"not regular files: {', '.join(skipped)}", file=sys.stderr)
            if not found:
                raise FileNotFoundError(f"--input {item}: folder holds no {'/'.join(DECODABLE)} files")
            files += found
        elif file_kind(item) is None:
            files.append(item)
        elif os.path.lexists(item):
            raise FileNotFoundError(f"--input {item}: {file_kind(item)}, expected an image file or a folder")
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


def label_rows(translator, source_pairs, set_pairs, grid=False, strip=None):
    """The full labels each photo is translated to, (R, dim): the --set label, every single change (--grid), or
    the --set label with `strip` at each of STRIP_VALUES."""
    layout = translator.layout
    source_dataset, source, target_dataset, target = translator.labels(source_pairs, set_pairs)
    if grid:
        return np.concatenate(layout.targets(source_dataset, source[None]), axis=0)
    if strip:
        rows = []
        for value in STRIP_VALUES:
            _, _, dataset, label = translator.labels(source_pairs, [*set_pairs, (strip, value)])
            rows.append(layout.encode(dataset, label[None]))
        return np.concatenate(rows, axis=0)
    return layout.encode(target_dataset, target[None])


def no_face(path, min_confidence):
    return faces.NoFaceError(f"{path}: no face found (mtcnn confidence >= {min_confidence:g}); pass "
                             "--fallback_center_crop to translate its centre square instead, or a lower "
                             "--min_face_confidence")


def edit_photos(files, budget, edit, min_confidence, fallback, spool):
    """{path: (PNG file in `spool`, note), or None for a photo without a face}: every photo's faces edited by
    `edit(payload)` -> (PNG bytes, note), or None when it finds no face, before anything is written, so a photo without
    a face stops the run (its name in the message) unless `fallback`. The PNGs wait in the folder `spool`, not in
    memory."""
    edited = {}
    for i, path in enumerate(files):
        try:
            out = edit(read_image(path, budget))
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(f"{path}: {reason(e)}") from None
        if out is None and not fallback:
            raise no_face(path, min_confidence)
        edited[path] = None if out is None else (write_atomic(os.path.join(spool, f"{i}.png"), out[0]), out[1])
    return edited


def face_note(found, edited):
    """' (2 faces)', or ' (10 faces, the 8 best edited)' when some were beyond the export's max_faces."""
    note = f" ({found} face{'s' if found > 1 else ''}"
    return note + (f", the {edited} best edited)" if edited < found else ")")


def shown_payload(payload, budget):
    """What the centre-square path sends to the model: `payload`, or when its EXIF orientation turns the photo, the
    PNG of its centre square as viewers show it (upright, as the app and --align_faces see it). Exports made before
    translate_bytes read the orientation itself need this; for newer ones it changes nothing."""
    contents = tf.constant(payload)
    orientation = preprocessing.exif_orientation(contents)  # the reader and turn translate_bytes and faces use
    if int(orientation) == 1:
        return payload
    shown = preprocessing.upright(preprocessing.decode_image(contents, None, max_pixels=budget), orientation)
    return png_payloads(preprocessing.center_crop(shown).numpy()[None])[0]


def centre_square(translator, payload, rows, single, budget):
    """The old path: PNG bytes of the photo's centre square translated (`single`), else the input and each
    translation side by side as a uint8 array."""
    outputs = translator.translate([payload] * len(rows), rows)
    if single:
        return outputs[0]
    columns = [images.to_uint8(decode_square(tf.constant(payload), translator.image_size, budget).numpy())]
    columns += [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in outputs]
    return np.concatenate(columns, axis=1)


def aligned_faces(translator, pixels, landmarks, rows_for, single):
    """uint8: the full photo with every face (landmarks (N, 5, 2)) translated and pasted back (`single`), else one row
    per face of its aligned model input and each translation; face_graph's alignment and paste-back, the edit_photo
    graph's. `rows_for` maps the faces' training crops to each one's label rows."""
    matrices = face_graph.face_matrices(landmarks)
    crops = face_graph.training_crops(pixels, matrices, translator.crop_size).numpy()
    if single:
        translated = translator.translate_crops(crops, np.concatenate(rows_for(crops)))
        return face_graph.paste_back(pixels, matrices, translated, translator.crop_size).numpy()
    strips = []
    for crop, payload, rows in zip(crops, png_payloads(crops), rows_for(crops), strict=True):
        model_input = images.to_uint8(preprocessing.preprocess(tf.constant(crop), None, translator.image_size).numpy())
        strips.append(np.concatenate([model_input, *translator.translate_pixels([payload] * len(rows), rows)], axis=1))
    return np.concatenate(strips, axis=0)


def stated(pairs):
    """--source text of predicted attributes: the names at 1 ('Black_Hair=1,Young=1'), or 'none'."""
    return ",".join(f"{name}=1" for name, value in pairs if value == 1) or "none"


def auto_source(translator, set_pairs):
    """The dataset whose attributes --source auto predicts: the one --set names (the first without --set), and a
    clear error when the translator has no classifier."""
    if not translator.can_classify:
        raise ValueError(f"--source auto: {NO_CLASSIFIER}")
    named = {translator.dataset_of(name) for name, _ in set_pairs}
    return named.pop() if len(named) == 1 else translator.layout.datasets[0]


def run(args):
    check_model_choice(args)
    if args.grid and args.strip:
        raise ValueError("--grid and --strip each write one image per photo; choose one")
    if (args.fallback_center_crop or args.min_face_confidence is not None) and not args.align_faces:
        raise ValueError("--fallback_center_crop and --min_face_confidence apply only with --align_faces")
    if os.path.isfile(args.output):
        raise ValueError(f"--output {args.output} is a file, expected a folder")
    files = collect_inputs(args.input)
    suffix = "-grid.png" if args.grid else "-strip.png" if args.strip else ".png"
    targets = [os.path.join(args.output, n) for n in output_names(files, suffix)]
    check_outputs(files, targets, args.overwrite)
    auto = "auto" in (text.strip() for text in args.source)
    if auto and len(args.source) > 1:
        raise ValueError("--source auto predicts every attribute; give it alone, and changes with --set")
    translator = load_translator(args, classifier=auto)
    budget = pixel_budget(translator, args.max_pixels)
    source_pairs = [] if auto else [p for text in args.source for p in parse_assignments(text, "--source")]
    set_pairs = [p for text in args.set for p in parse_assignments(text, "--set")]
    rows = label_rows(translator, source_pairs, set_pairs, args.grid, args.strip)
    auto_dataset = auto_source(translator, set_pairs) if auto else None
    predicted = []

    def rows_for(probabilities):
        """One photo's (or face's) label rows: --source, or with --source auto its own predicted attributes."""
        if not auto:
            return rows
        pairs = translator.own_pairs(probabilities, auto_dataset)
        predicted.append(stated(pairs))
        return label_rows(translator, pairs, set_pairs, args.grid, args.strip)

    def rows_for_crops(crops):
        return [rows_for(p) for p in (translator.classify_crops(crops) if auto else [None] * len(crops))]

    single = not (args.grid or args.strip)
    if args.view_scale < 0:
        raise ValueError(f"--view_scale must be 0 (automatic) or more, got {args.view_scale}")
    names = ["input", *(translator.layout.target_names() if args.grid
                        else (f"{args.strip}={value:g}" for value in STRIP_VALUES))]
    scale = images.view_scale_for(translator.image_size, args.view_scale)

    def grid_png(array):
        """A --grid / --strip image: enlarged by --view_scale under a header row naming its columns."""
        return images.png_bytes(images.labelled(array, names, scale))

    def own_note():
        return f" (own attributes: {'; '.join(predicted)})" if auto else ""

    def in_graph(payload):
        """One photo through the edit_photo graph (edit_photo_auto with --source auto)."""
        out = translator.edit_photo(payload, label, chosen)
        if int(out["num_faces"]) == 0:
            return None
        predicted.clear()
        if auto:
            predicted.extend(stated(translator.own_pairs(row, auto_dataset))
                             for row in out["own"][: int(out["num_edited"])])
        return bytes(out["image_bytes"]), face_note(int(out["num_faces"]), int(out["num_edited"])) + own_note()

    def in_process(payload):
        """One photo through face_graph's functions with the model's translate_bytes: other thresholds, --grid,
        --strip, a joint model's --source auto, and exports without edit_photo."""
        pixels = faces.decode_photo(payload, budget)
        landmarks = translator.find_faces(pixels, min_confidence)["landmarks"]
        if not len(landmarks):
            return None
        predicted.clear()
        result = aligned_faces(translator, pixels, landmarks, rows_for_crops, single)
        png = tf.io.encode_png(result).numpy() if single else grid_png(result)  # edit_photo's encoder
        return png, face_note(len(landmarks), len(landmarks)) + own_note()

    min_confidence = faces.MIN_CONFIDENCE if args.min_face_confidence is None else args.min_face_confidence
    if not 0.0 < min_confidence <= 1.0:
        raise ValueError(f"--min_face_confidence must lie in (0, 1], got {min_confidence:g}")
    graph = (args.align_faces and single and min_confidence == faces.MIN_CONFIDENCE
             and (translator.can_edit_photo_auto if auto else translator.can_edit_photo))
    label, chosen = rows[0], None
    if auto:  # the --set values on all-0 attributes, and which entries they are: each face keeps the others
        label = label_rows(translator, [], set_pairs)[0]
        chosen = np.isin(np.arange(len(label)), [translator.layout.offset(auto_dataset)
                                                 + translator.layout.spec(auto_dataset).index(n) for n, _ in set_pairs])
    with tempfile.TemporaryDirectory(prefix="stargan-edit-") as spool:
        edited = {}
        if args.align_faces:
            edited = edit_photos(files, budget, in_graph if graph else in_process, min_confidence,
                                 args.fallback_center_crop, spool)
        written = []
        for path, target_path in zip(files, targets, strict=True):
            try:
                if edited.get(path):
                    spooled, note = edited[path]
                    with open(spooled, "rb") as f:
                        out = write_atomic(target_path, f.read())
                else:
                    note = " (no face found: centre square)" if args.align_faces else ""
                    predicted.clear()
                    payload = shown_payload(read_image(path, budget), budget)
                    photo_rows = rows_for(translator.classify([payload])[0] if auto else None)
                    result = centre_square(translator, payload, photo_rows, single, budget)
                    out = write_atomic(target_path, result if single else grid_png(result))
                    note += own_note()
            except tf.errors.InvalidArgumentError as e:  # what PIL's look at the header cannot see, e.g. GIF frames
                raise ValueError(f"{path}: {reason(e)}") from None
            written.append(out)
            print(f"{path} -> {out}{note}")
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_options(parser)
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders of images")
    parser.add_argument("--source", action="append", default=[],
                        help="the photos' attributes, e.g. Male=1,Young=1; or auto: predicted by the export's "
                             "classifier (export.py --include_classifier)")
    parser.add_argument("--set", action="append", default=[], help="attribute changes, e.g. Blond_Hair=1")
    parser.add_argument("--output", required=True, help="folder for the translated PNGs")
    parser.add_argument("--grid", action="store_true", help="write one grid per photo over every single change")
    parser.add_argument("--strip", metavar="NAME", help="write one strip per photo: the input, then NAME at "
                                                        "0, 0.25, 0.5, 0.75 and 1 on top of --set")
    parser.add_argument("--view_scale", type=int, default=0,
                        help="--grid and --strip images are saved enlarged this many times (nearest neighbour) under "
                             "a header row naming each column; 0: automatic (columns at least 96 pixels wide)")
    parser.add_argument("--align_faces", action="store_true",
                        help="find faces (mtcnn), align each like CelebA, translate and paste back into the full "
                             "photo (needs: pip install -e \".[faces]\" in the clone)")
    parser.add_argument("--min_face_confidence", type=float, default=None,
                        help=f"with --align_faces: keep faces mtcnn scores at least this (default "
                             f"{faces.MIN_CONFIDENCE})")
    parser.add_argument("--fallback_center_crop", action="store_true",
                        help="with --align_faces: translate the centre square of a photo where no face is found "
                             "(default: stop with an error naming it)")
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, faces.FacesExtraMissing) as e:
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
