"""A trained generator ready to translate photos, from an export or a checkpoint folder: `Translator` (labels by
name, translate_bytes, classify, edit_photo and its face detector), the options that pick the model (shared by the
translate command and the app) and the checks of an input image and of --max_pixels."""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from stargan_tf import domains, face_graph, faces, preprocessing
from stargan_tf.checkpoints import GENERATORS
from stargan_tf.config import parse_step
from stargan_tf.preprocessing import MAX_PIXELS


def png_payloads(crops):
    """PNG bytes of each uint8 square (N, c, c, 3): what `translate_bytes` and `classify` take."""
    return [tf.io.encode_png(crop).numpy() for crop in np.asarray(crops, np.uint8)]


class Translator:
    """Labels by name and a `translate_bytes` function, from an export or a checkpoint directory."""

    def __init__(self, translate_bytes, names, groups, label_dataset, image_size, max_pixels=None, crop_size=None,
                 classify_bytes=None, edit_photo=None, edit_photo_auto=None, edit_pixels=None, edit_pixels_auto=None,
                 detector=None):
        self._translate_bytes = translate_bytes
        self._classify_bytes = classify_bytes  # None: an export without the classify signature
        self._edit_photo = edit_photo  # None: an export without the edit_photo signature
        self._edit_photo_auto = edit_photo_auto  # None: without edit_photo_auto (no classifier, or a joint label)
        self._edit_pixels, self._edit_pixels_auto = edit_pixels, edit_pixels_auto  # None: exports before them
        self._detector = detector  # the model's own face_graph.FaceDetector, a callable making it, or None
        self.image_size = int(image_size)
        self.max_pixels = None if max_pixels is None else int(max_pixels)  # None: an export older than the budget
        # An export older than the crop_size metadata: CelebA's default crop, as every earlier CelebA export.
        self.crop_size = faces.DEFAULT_CROP_SIZE if crop_size is None else int(crop_size)
        self.layout = domains.LabelLayout.from_metadata(list(names), list(groups), list(label_dataset))
        self.names = [n for n, o in zip(names, label_dataset, strict=True) if o != domains.MASK]

    @classmethod
    def from_export(cls, export_dir):
        path = resolve_export(export_dir)
        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["translate_bytes"]
        classify = loaded.signatures["classify"] if "classify" in loaded.signatures else None
        edit = loaded.signatures["edit_photo"] if "edit_photo" in loaded.signatures else None
        auto = loaded.signatures["edit_photo_auto"] if "edit_photo_auto" in loaded.signatures else None
        stored = getattr(loaded, "detector", None)  # mtcnn's weights, in exports made with --include_faces
        return cls(lambda b, c: fn(image_bytes=b, label=c)["image_bytes"], *_metadata(loaded.signatures["metadata"]),
                   classify_bytes=None if classify is None else (lambda b: classify(image_bytes=b)["probabilities"]),
                   edit_photo=None if edit is None else (lambda b, c: edit(image_bytes=b, label=c)),
                   edit_photo_auto=None if auto is None else (lambda b, c, s: auto(image_bytes=b, label=c, set=s)),
                   # Functions that are not signatures hold no reference to their variables: the lambdas keep
                   # `loaded` (and so its variables) alive.
                   edit_pixels=(lambda p, c: loaded.edit_pixels(p, c)) if hasattr(loaded, "edit_pixels") else None,
                   edit_pixels_auto=((lambda p, c, s: loaded.edit_pixels_auto(p, c, s))
                                     if hasattr(loaded, "edit_pixels_auto") else None),
                   detector=None if stored is None else (lambda: face_graph.FaceDetector.from_saved(stored)))

    @classmethod
    def from_checkpoint(cls, model_save_dir, step="latest", which="auto", max_pixels=MAX_PIXELS, classifier=False,
                        align_faces=False):
        """`classifier`: also restore D from the same checkpoint (when it holds one) for `classify`; `align_faces`:
        also build mtcnn's networks for `edit_photo` (the graph export.py --include_faces stores)."""
        from stargan_tf.checkpoints import checkpoint_path, has_discriminator, restore_discriminator, restore_generator
        from stargan_tf.export import build_server

        generator, config, restored = restore_generator(model_save_dir, step, which)
        with_d = classifier and has_discriminator(checkpoint_path(model_save_dir, restored))
        discriminator = restore_discriminator(model_save_dir, restored, config) if with_d else None
        server = build_server(generator, config, max_pixels, discriminator, include_faces=align_faces)
        return cls(lambda b, c: server.translate_bytes(b, c)["image_bytes"], *_metadata(server.metadata),
                   classify_bytes=(lambda b: server.classify(b)["probabilities"]) if with_d else None,
                   edit_photo=server.edit_photo, edit_photo_auto=server.edit_photo_auto, edit_pixels=server.edit_pixels,
                   edit_pixels_auto=server.edit_pixels_auto, detector=getattr(server, "detector", None))

    @property
    def can_edit_photo(self):
        return self._edit_photo is not None

    @property
    def can_edit_photo_auto(self):
        return self._edit_photo_auto is not None

    def edit_photo(self, payload, label, chosen=None):
        """The edit_photo signature on one photo's bytes and one label row (c_dim,), or with `chosen` (c_dim,)
        edit_photo_auto's: {output: numpy value of that photo}, e.g. "image_bytes" the PNG, "num_faces" every face
        found, "num_edited" those edited."""
        self._check_edit(chosen)
        rows = [tf.constant(np.asarray(v, np.float32)[None]) for v in (label, chosen) if v is not None]
        out = (self._edit_photo if chosen is None else self._edit_photo_auto)(tf.constant([payload]), *rows)
        return {k: v.numpy()[0] for k, v in out.items()}

    def edit_pixels(self, pixels, label, chosen=None):
        """edit_photo on a decoded photo, uint8 (H, W, 3), through the same graph: "image" (uint8, the edited photo)
        instead of "image_bytes". Exports made before the edit_pixels function get the photo as a PNG."""
        self._check_edit(chosen)
        edit = self._edit_pixels if chosen is None else self._edit_pixels_auto
        if edit is None:
            out = self.edit_photo(tf.io.encode_png(pixels).numpy(), label, chosen)
            png = out.pop("image_bytes")
            return {**out, "image": tf.io.decode_png(png, channels=3).numpy()}
        rows = [tf.constant(np.asarray(v, np.float32)) for v in (label, chosen) if v is not None]
        return {k: v.numpy() for k, v in edit(tf.constant(pixels, tf.uint8), *rows).items()}

    def _check_edit(self, chosen):
        if not self.can_edit_photo or (chosen is not None and not self.can_edit_photo_auto):
            raise ValueError("this export has no edit_photo signature (edit_photo_auto: and a classifier); export "
                             "again with export.py --include_faces (and --include_classifier)")

    @property
    def detector(self):
        """The face_graph.FaceDetector: the one the export (or checkpoint folder's graph) holds, else the faces
        extra's (FacesExtraMissing when it is not installed)."""
        if callable(self._detector):  # made on first use: the export's weights read once
            self._detector = self._detector()
        return self._detector or face_graph.load_detector()

    def find_faces(self, pixels, min_confidence=faces.MIN_CONFIDENCE):
        """Every face in uint8 `pixels` with score >= `min_confidence`, left to right: {"landmarks" (N, 5, 2),
        "boxes" (N, 4) x, y, width, height, "scores" (N,)} as numpy."""
        found = self.detector.detect(pixels, None, min_confidence)
        return {k: found[k].numpy() for k in ("landmarks", "boxes", "scores")}

    @property
    def can_classify(self):
        return self._classify_bytes is not None

    def classify(self, image_bytes):
        """D's probabilities (N, c_dim) for each image's centre square (translate's preprocessing)."""
        if not self.can_classify:
            raise ValueError(NO_CLASSIFIER)
        return self._classify_bytes(tf.constant(image_bytes)).numpy()

    def classify_crops(self, crops):
        """D's probabilities (N, c_dim) for uint8 squares (N, c, c, 3), e.g. aligned faces' training crops."""
        return self.classify(png_payloads(crops))

    def own_pairs(self, probabilities, dataset=None):
        """[(name, 0 or 1)] for every entry of `dataset`'s part (default: the first) from `classify`'s row."""
        return self.layout.predicted_pairs(dataset or self.layout.datasets[0], probabilities)

    def translate(self, image_bytes, labels):
        """PNG bytes of `image_bytes` translated to each row of `labels` (float32 (N, c_dim))."""
        out = self._translate_bytes(tf.constant(image_bytes), tf.constant(np.asarray(labels, np.float32)))
        return [bytes(b) for b in out.numpy()]

    def translate_crops(self, crops, labels):
        """uint8 squares (N, c, c, 3) translated to the rows of `labels`: uint8 (N, image_size, image_size, 3)."""
        return self.translate_pixels(png_payloads(crops), labels)

    def translate_pixels(self, image_bytes, labels):
        """`translate`, decoded: uint8 (N, image_size, image_size, 3) (for crops encoded once, as by png_payloads)."""
        return np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                         for png in self.translate(image_bytes, labels)])

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


NO_CLASSIFIER = ("this export has no classify signature (D's classifier), so the photo's own attributes cannot be "
                 "predicted; export again with export.py --include_classifier")


def _metadata(metadata_fn):
    meta = {k: v.numpy() for k, v in metadata_fn().items()}
    decode = lambda values: [v.decode() for v in values]  # noqa: E731
    return (decode(meta["attribute_names"]), meta["exclusive_group"].tolist(), decode(meta["label_dataset"]),
            meta["image_size"], meta.get("max_pixels"), meta.get("crop_size"))


def resolve_export(export_dir):
    """An export folder, or a TF Serving base path whose highest numbered version is used."""
    if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    versions = sorted(int(d) for d in os.listdir(export_dir) if d.isdigit()) if os.path.isdir(export_dir) else []
    if not versions:
        raise FileNotFoundError(f"--export_dir {export_dir}: no saved_model.pb and no numbered version folder")
    return os.path.join(export_dir, str(versions[-1]))


def read_image(path, max_pixels=MAX_PIXELS):
    """The file's bytes, checked to be a JPEG/PNG/GIF/BMP image of at most `max_pixels` pixels first (the size
    from its header, before any pixel is decoded), so a clear error names a file that is not one or too large."""
    with open(path, "rb") as f:
        return check_image(f.read(), path, max_pixels)


def check_image(payload, path, max_pixels=MAX_PIXELS):
    """`payload` when it is a JPEG/PNG/GIF/BMP image within `max_pixels` (read_image); errors name `path`."""
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


def pixel_budget(translator, requested):
    """--max_pixels, or the translator's own budget; above an export's own budget the export would refuse."""
    if requested is None:
        return translator.max_pixels or MAX_PIXELS
    preprocessing.check_max_pixels(requested)
    if translator.max_pixels is not None and requested > translator.max_pixels:
        raise ValueError(f"--max_pixels {requested:,} is above the export's budget of {translator.max_pixels:,} "
                         "pixels; export again with export.py --max_pixels")
    return requested


def add_model_options(parser):
    """The options that pick the model: an export, or a checkpoint directory with its step and generator (the
    translate CLI and the app share them)."""
    parser.add_argument("--export_dir", help="SavedModel written by export.py (a version folder or its parent)")
    parser.add_argument("--model_save_dir", help="or: a train.py checkpoint directory")
    parser.add_argument("--test_iters", type=parse_step, default="latest", help="checkpoint step with --model_save_dir")
    parser.add_argument("--generator", choices=GENERATORS, default="auto",
                        help="with --model_save_dir: the moving average of G (ema), the trained G (raw), or auto")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="refuse images whose header declares more pixels (default: the export's budget)")


def check_model_choice(args):
    if bool(args.export_dir) == bool(args.model_save_dir):
        raise ValueError("give exactly one of --export_dir or --model_save_dir")


def load_translator(args, classifier, align_faces=None):
    """The Translator of the model `add_model_options` picked; `classifier`: a checkpoint's D too, for classify;
    `align_faces` (default: args.align_faces): a checkpoint's edit_photo graph too (needs the faces extra)."""
    check_model_choice(args)
    if args.export_dir:
        return Translator.from_export(args.export_dir)
    return Translator.from_checkpoint(args.model_save_dir, args.test_iters, args.generator,
                                      args.max_pixels or MAX_PIXELS, classifier=classifier,
                                      align_faces=args.align_faces if align_faces is None else align_faces)
