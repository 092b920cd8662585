"""A web page to edit your own photos with an export (or a checkpoint directory), running the model in-process.

  python -m stargan_tf.app --export_dir DIR [--port 7860] [--share] [--no_align_faces] [--max_pixels N]
  python -m stargan_tf.app --model_save_dir DIR [--test_iters N|latest] [--generator auto|ema|raw]

Needs the app extra (Gradio: pip install -e ".[app]" in the clone); with the faces extra too, every face is found
(mtcnn), aligned like CelebA, translated and pasted back, and pixels outside the feathered faces keep their bytes.
Without it, or when no face is found, the page says so and the photo's centre square is translated. One control per
attribute: an exclusive group (hair colours, a folder dataset's classes) is one choice, every other attribute a 0..1
slider. They start from the photo's own attributes when the export has the classify signature (export.py
--include_classifier; a checkpoint directory has D anyway); only the controls you move change each face's own.
The page listens on 127.0.0.1 only, unless --share asks Gradio for a public link. Requests are queued, one at a
time. Another photo can be uploaded at any time and replaces the open one; clearing the upload (x) clears the page.
An image smaller than SHOWN_SIDE pixels is shown enlarged (nearest neighbour); the download keeps the result's own
pixels. A photo larger than WORK_SIDE pixels a side is scaled down to a working copy, the one shown, edited and
downloaded, and its "Full size" button edits the upload itself (kept on disk while the photo is open); the app
keeps the MAX_OPEN_PHOTOS most recently used photos (an older one must be uploaded again) and the files of its last
KEPT_RESULTS requests. The page shows files the app wrote once and never rewrites.
With an export made with --include_faces (or a checkpoint directory), finding, aligning, translating and pasting
back the faces is the export's edit_photo graph (edit_photo_auto when it has the classifier), the one TF Serving and
translate --align_faces run, on the working copy decoded once; older exports run the same functions
(stargan_tf.face_graph) around the model's translate_bytes. Through edit_photo, a download (or a larger photo's
"Full size" one) is byte for byte what translate --align_faces writes for the same photo and label.
The logic is in plain functions (Editor, controls_for, label_for); build_page is only the layout.
"""

import argparse
import atexit
import collections
import contextlib
import dataclasses
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import traceback
import uuid

import numpy as np
import tensorflow as tf
from PIL import Image

from stargan_tf import face_graph, faces, images, preprocessing
from stargan_tf.cli import fail, reason
from stargan_tf.files import write_atomic
from stargan_tf.translator import add_model_options, check_image, load_translator, pixel_budget, png_payloads

NONE = "none"
DEFAULT_PORT = 7860
MAX_UPLOAD = "200mb"  # Gradio refuses larger uploads; the pixel budget then guards decoding
SLIDER_STEP = 0.05
WORK_SIDE = 1600  # the working copy's longer side at most: 1600 x 1200 x 3 = 5.8 MB kept per open photo
MAX_OPEN_PHOTOS = 16  # open photos kept (least recently used first out): about 92 MB at most
KEPT_RESULTS = 16  # requests whose files stay in out_dir; Gradio has copied them into its cache by then
MAX_SESSIONS = 256  # Gradio sessions kept (each holds only its photo's key)
APP_HINT = 'pip install -e ".[app]" in the clone'
IMAGE_HEIGHT = 420  # the Original and Result panels' height in CSS pixels, whatever the images' size
SHOWN_SIDE = 384  # a smaller image is shown enlarged by a whole factor to at least this many pixels a side
PHOTO_KINDS = "a JPEG, PNG, GIF or BMP photo"
NONE_INFO = "none: none of these colours (the label sets no hair colour, as CelebA does for any other hair colour)"
OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")  # e.g. PIL's `<_io.BytesIO object at 0x7f...>`


NO_CLASSIFY_NOTE = (" This export has no classify signature, so the controls start at 0; export with "
                    "--include_classifier to start from the photo's own attributes.")


class PhotoError(ValueError):
    """An upload that cannot be edited (not an image, over the pixel budget): the message says why."""


@dataclasses.dataclass(frozen=True)
class Control:
    """One input of the page: a choice over an exclusive group's members (`choice`), else a 0..1 slider for one
    attribute; `optional`: the choice may be none of them (hair colours), unlike a folder dataset's classes."""

    dataset: str
    names: tuple
    choice: bool = False
    optional: bool = False

    @property
    def label(self):
        if not self.choice:
            return self.names[0]
        return "Hair colour" if all(n.endswith("_Hair") for n in self.names) else f"{self.dataset}: one of"

    @property
    def choices(self):
        return [*self.names, NONE] if self.optional else list(self.names)

    @property
    def default(self):
        """All 0: no member of an optional group, a folder dataset's first class."""
        return (NONE if self.optional else self.names[0]) if self.choice else 0.0

    def value_from(self, part):
        """The control's value for a 0/1 part label given as {name: value}."""
        if not self.choice:
            return float(part[self.names[0]])
        best = max(self.names, key=lambda n: part[n])
        return best if part[best] >= 0.5 or not self.optional else NONE

    def assign(self, value):
        """[(name, value)] this control sets in its dataset's part."""
        if self.choice:
            return [(n, 1.0 if n == value else 0.0) for n in self.names]
        return [(self.names[0], float(value))]

    def describe(self, value):
        return str(value) if self.choice else f"{self.names[0]}={float(value):g}"

    @property
    def info(self):
        """What the page says under the control: what the hair choice's 'none' means."""
        return NONE_INFO if self.optional else None

    def clamp(self, value):
        """A slider's value as a number in 0..1, as the page shows a typed one (5 -> 1, empty -> 0); a choice as
        it is."""
        if self.choice:
            return value
        return min(max(float(value or 0.0), 0.0), 1.0)


def controls_for(layout):
    """The page's controls for a label layout, in label order: each exclusive group once, at its first member."""
    controls = []
    for dataset, spec in layout.parts:
        seen = set()
        for i, name in enumerate(spec.names):
            group = spec.group_of(i)
            if group is None:
                controls.append(Control(dataset, (name,)))
            elif i not in seen:
                seen.update(group)
                controls.append(Control(dataset, tuple(spec.names[j] for j in group), True, not spec.one_hot))
    return controls


def label_for(layout, controls, values, dataset=None):
    """The full label (1, dim) the controls' `values` give for `dataset`'s part (default: the first dataset)."""
    dataset = dataset or layout.datasets[0]
    spec = layout.spec(dataset)
    part = np.zeros((1, spec.dim), np.float32)
    for control, value in zip(controls, values, strict=True):
        if control.dataset == dataset:
            for name, v in control.assign(value):
                part[0, spec.index(name)] = v
    return layout.encode(dataset, part)


def values_from(layout, controls, probabilities):
    """Control values for D's probabilities (c_dim,): each dataset's part rounded as translate --source auto does."""
    parts = {dataset: dict(layout.predicted_pairs(dataset, probabilities)) for dataset in layout.datasets}
    return [c.value_from(parts[c.dataset]) for c in controls]


def face_values(values, start, own):
    """One face's control values: those moved away from `start` (what the page showed first) as moved, the rest as
    that face's `own`, so 'blond' on a group photo keeps each face's gender and age."""
    return [o if v == s else v for v, s, o in zip(values, start, own, strict=True)]


@dataclasses.dataclass
class Photo:
    """An opened upload: the upright working copy, its faces (none: the centre square is used), the model's input
    square of each as PNG bytes, each one's own control values, and what the page says about it."""

    name: str
    pixels: np.ndarray  # the working copy: uint8, at most WORK_SIDE a side
    landmarks: np.ndarray  # (N, 5, 2): the faces edited (N = 0: the centre square is used)
    payloads: list  # the crops as PNG bytes, encoded once for every edit's model call and the page's gallery
    own: list  # per crop: control values (predicted by classify, else the controls' defaults)
    note: str
    in_graph: bool = False  # edited by the edit_photo graph (else face_graph's functions around translate_bytes)
    first: np.ndarray | None = None  # the upload's result, made while opening it (dropped once shown)
    original: str | None = None  # the upload's bytes on disk when the working copy is scaled down (Full size)


@dataclasses.dataclass
class View:
    """What the page shows after a request: always a message; after a successful one the photo and the result
    (uint8) with its PNG file (`png`, the download) and the file the Result panel shows (`shown`: the same, or
    enlarged when small), and after an upload the values the controls start from, the photo's key in the editor
    (`token`) and the PNG files of the working copy as shown (`original`, enlarged when small) and of the crops."""

    message: str
    photo: Photo | None = None
    result: np.ndarray | None = None
    png: str | None = None
    values: list | None = None
    token: str | None = None
    original: str | None = None
    crops: list | None = None
    shown: str | None = None


def working_copy(pixels, side=WORK_SIDE):
    """`pixels` scaled down (Lanczos) so that neither side exceeds `side`; smaller photos as they are."""
    height, width = pixels.shape[:2]
    if max(height, width) <= side:
        return pixels
    factor = side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def enlarged(pixels, side=SHOWN_SIDE):
    """`pixels` enlarged by the smallest whole factor that makes its longer side at least `side`, each pixel a sharp
    square (nearest neighbour): how the page shows a small result; larger images as they are."""
    factor = math.ceil(side / max(pixels.shape[:2]))
    return pixels if factor <= 1 else np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def plain(text):
    """`text` without Python object reprs, which mean nothing to the person reading the page."""
    return OBJECT_REPR.sub("", text)


class Editor:
    """Opens uploads and renders edits with one Translator; a lock keeps one model call at a time."""

    def __init__(self, translator, align_faces=True, max_pixels=None, out_dir=None, work_side=WORK_SIDE,
                 max_photos=MAX_OPEN_PHOTOS, kept_results=KEPT_RESULTS):
        self.translator = translator
        self.layout = translator.layout
        self.controls = controls_for(self.layout)
        self.budget = pixel_budget(translator, max_pixels)
        self.align_faces = align_faces
        self.lock = threading.Lock()
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="stargan-app-")
        self.work_side, self.max_photos, self.kept_results = work_side, max_photos, kept_results
        self.photos = collections.OrderedDict()  # token -> Photo, least recently used first
        self.originals = os.path.join(self.out_dir, "originals")  # uploads of scaled-down photos, one file each
        self.folders = collections.deque()  # out_dir's request folders, oldest first
        self.keep_lock = threading.Lock()

    @property
    def defaults(self):
        return [c.default for c in self.controls]

    def open(self, payload, name):
        """Check and decode an upload (once), find its faces and predict each one's attributes; PhotoError when it is
        not an image or is over the pixel budget."""
        try:
            check_image(payload, name, self.budget)
            pixels = faces.decode_photo(payload, self.budget)
        except ValueError as e:
            unreadable = isinstance(e.__context__, OSError)  # PIL could not read it (UnidentifiedImageError is one)
            raise PhotoError(plain(str(e)) + (f"; expected {PHOTO_KINDS}." if unreadable else "")) from None
        except tf.errors.InvalidArgumentError as e:  # what the header check cannot see, e.g. a GIF's frames
            raise PhotoError(plain(f"{name}: {reason(e)}")) from None
        (height, width), pixels = pixels.shape[:2], working_copy(pixels, self.work_side)
        scaled = "" if pixels.shape[:2] == (height, width) else (
            f" Edited at {pixels.shape[1]} x {pixels.shape[0]}: the photo's {width} x {height} is scaled down to at "
            f"most {self.work_side} pixels a side.")
        photo = self._open_in_graph(pixels, name, scaled) if self.in_graph else self._open(pixels, name, scaled)
        if scaled and len(photo.landmarks):  # the upload itself waits on disk for a full-size edit of its faces
            os.makedirs(self.originals, exist_ok=True)
            photo.original = write_atomic(os.path.join(self.originals, uuid.uuid4().hex), payload)
        return photo

    def _open(self, pixels, name, scaled):
        """open() with face_graph's functions around translate_bytes: exports without edit_photo, alignment off."""
        landmarks, note = self._faces(pixels, name)
        crops = self._crops(pixels, landmarks)
        payloads = png_payloads(crops)
        if self.translator.can_classify:
            with self.lock:
                probabilities = self.translator.classify(payloads)
            own = [values_from(self.layout, self.controls, p) for p in probabilities]
            note += scaled + " The controls start from its own attributes (D's classifier)."
        else:
            own = [self.defaults] * len(crops)
            note += scaled + NO_CLASSIFY_NOTE
        return Photo(name, pixels, landmarks, payloads, own, note)

    def _crops(self, pixels, landmarks):
        """uint8 (N, c, c, 3): each face's training crop (face_graph's alignment), or the centre square without one."""
        if len(landmarks):
            return face_graph.training_crops(pixels, face_graph.face_matrices(landmarks),
                                             self.translator.crop_size).numpy()
        return preprocessing.center_crop(tf.constant(pixels)).numpy()[None]

    @property
    def in_graph(self):
        """Whether faces are edited by the edit_photo graph: alignment on, the signature there, and each face's own
        attributes predicted in the graph too when the controls start from them."""
        translator = self.translator
        return self.align_faces and translator.can_edit_photo and (
            translator.can_edit_photo_auto or not translator.can_classify)

    def _edit_in_graph(self, pixels, label, chosen):
        """edit_photo's outputs for the decoded working copy (edit_photo_auto's with `chosen` when the export has
        it), "image" the edited photo."""
        with self.lock:
            return self.translator.edit_pixels(pixels, label, chosen if self.translator.can_edit_photo_auto else None)

    def _open_in_graph(self, pixels, name, scaled):
        """open() through edit_photo: its faces (found in the graph), their crops for the page and own values, and
        the result at those values (each face at its own attributes: the first view)."""
        auto = self.translator.can_edit_photo_auto
        out = self._edit_in_graph(pixels, label_for(self.layout, self.controls, self.defaults)[0],
                                  np.zeros(self.layout.dim, np.float32))  # nothing set: each face at its own
        count, edited = int(out["num_faces"]), int(out["num_edited"])
        landmarks = out["landmarks"][:edited]
        crops = self._crops(pixels, landmarks)
        if edited:
            many = "s" if count > 1 else ""
            beyond = f"; the {edited} best are edited" if edited < count else ""
            note = f"{count} face{many} found, aligned like CelebA and pasted back{beyond}."
        else:
            note = (f"No face found in {name} (mtcnn confidence >= {faces.MIN_CONFIDENCE:g}): the centre square is "
                    "translated instead.")
        note += scaled
        payloads = png_payloads(crops)
        first = out["image"] if edited else None
        if edited and auto:
            own = [values_from(self.layout, self.controls, row) for row in out["own"][:edited]]
            note += " The controls start from its own attributes (D's classifier)."
        elif self.translator.can_classify:
            with self.lock:
                own = [values_from(self.layout, self.controls, self.translator.classify(payloads)[0])]
            note += " The controls start from its own attributes (D's classifier)."
        else:
            own = [self.defaults] * len(crops)
            note += NO_CLASSIFY_NOTE
        return Photo(name, pixels, landmarks, payloads, own, note, edited > 0, first)

    def keep(self, photo):
        """Keep `photo` open for edits: its key; beyond max_photos the least recently used photo is closed."""
        token = uuid.uuid4().hex
        with self.keep_lock:
            self.photos[token] = photo
            closed = [self.photos.popitem(last=False)[1] for _ in range(len(self.photos) - self.max_photos)]
        for old in closed:
            self._forget(old)
        return token

    def recall(self, token):
        """The open photo under `token`, or None when there is none (closed, or never uploaded)."""
        with self.keep_lock:
            photo = self.photos.get(token)
            if photo is not None:
                self.photos.move_to_end(token)
            return photo

    def close(self, token):
        """Forget the photo under `token` (a new upload, a closed tab); None or an unknown key is ignored."""
        with self.keep_lock:
            photo = self.photos.pop(token, None)
        self._forget(photo)

    @staticmethod
    def _forget(photo):
        """Remove a closed photo's kept upload from disk."""
        if photo is not None and photo.original is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(photo.original)

    def _faces(self, pixels, name):
        """(landmarks (N, 5, 2), note): every face when alignment is on and a detector is at hand (the export's, or
        the faces extra's), else none."""
        none = np.zeros([0, 5, 2], np.float32)
        if not self.align_faces:
            return none, "Face alignment is off (--no_align_faces): the centre square is translated."
        try:
            with self.lock:
                landmarks = self.translator.find_faces(pixels)["landmarks"]
        except faces.FacesExtraMissing:
            return none, (f"Faces are not aligned: install the faces extra ({faces.INSTALL_HINT}); the centre "
                          "square is translated instead.")
        if not len(landmarks):
            return none, (f"No face found in {name} (mtcnn confidence >= {faces.MIN_CONFIDENCE:g}): the centre "
                          "square is translated instead.")
        many = "s" if len(landmarks) > 1 else ""
        return landmarks, f"{len(landmarks)} face{many} found, aligned like CelebA and pasted back."

    def render(self, photo, values, dataset=None, start=None):
        """uint8: the photo with every face translated to the controls' `values` and pasted back, or its centre
        square translated (at the model's size) when it has no face. Controls equal to `start` (default: where the
        upload set them, the first face's own values) keep each face's own value."""
        start = photo.own[0] if start is None else start
        if photo.in_graph:
            layout = self.layout
            label = label_for(layout, self.controls, values, dataset)[0]
            moved = [(c.dataset, n) for c, v, s in zip(self.controls, values, start, strict=True) if v != s
                     for n in c.names]
            chosen = np.zeros(layout.dim, np.float32)
            chosen[[layout.offset(d) + layout.spec(d).index(n) for d, n in moved]] = 1.0
            return self._edit_in_graph(photo.pixels, label, chosen)["image"]
        labels = np.concatenate([label_for(self.layout, self.controls, face_values(values, start, own), dataset)
                                 for own in photo.own])
        with self.lock:
            out = self.translator.translate_pixels(photo.payloads, labels)
        if len(photo.landmarks):
            return face_graph.paste_back(photo.pixels, face_graph.face_matrices(photo.landmarks), out,
                                         self.translator.crop_size).numpy()
        return out[0]

    def folder(self):
        """A new folder in out_dir for one request's files; beyond kept_results the oldest is removed (Gradio
        copied its files into its own cache when that request ended)."""
        folder = tempfile.mkdtemp(dir=self.out_dir)
        with self.keep_lock:
            self.folders.append(folder)
            old = [self.folders.popleft() for _ in range(len(self.folders) - self.kept_results)]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return folder

    def save(self, result, name, folder=None):
        """(download, shown): the result as a PNG file for the download link, `<stem>-stargan.png`, and the file
        the Result panel shows: the same, or when it is smaller than SHOWN_SIDE an enlarged copy beside it
        (`<stem>-stargan-shown.png`); written once in a folder of their own (never rewritten under a reader)."""
        path = write_atomic(os.path.join(folder or self.folder(), stem(name) + "-stargan.png"),
                            tf.io.encode_png(result).numpy())  # edit_photo's encoder: the CLI's bytes
        shown = enlarged(result)
        if shown is result:
            return path, path
        return path, images.save_png(path.removesuffix(".png") + "-shown.png", shown)

    def save_photo(self, photo, folder):
        """(working copy as shown, enlarged when small; [crops]) as PNG files in `folder` for the page."""
        original = images.save_png(os.path.join(folder, stem(photo.name) + ".png"), enlarged(photo.pixels))
        crops = []
        for i, payload in enumerate(photo.payloads):
            crops.append(os.path.join(folder, f"{stem(photo.name)}-crop{i + 1}.png"))
            write_atomic(crops[-1], payload)
        return original, crops

    def describe(self, values, dataset=None):
        chosen = [c.describe(v) for c, v in zip(self.controls, values, strict=True)
                  if c.dataset == (dataset or self.layout.datasets[0])]
        return ", ".join(chosen)

    def upload(self, payload, name):
        """An upload opened and translated to its own attributes, or a message saying why it cannot be."""
        def run():
            photo = self.open(payload, name)
            try:
                result = self.render(photo, photo.own[0]) if photo.first is None else photo.first
                photo.first = None  # kept open for edits without it
                folder = self.folder()
                original, crops = self.save_photo(photo, folder)
                png, shown = self.save(result, photo.name, folder)
            except BaseException:
                self._forget(photo)  # never kept: its upload on disk goes now
                raise
            return View(f"{photo.name}: {photo.note} Now: {self.describe(photo.own[0])}.", photo, result, png,
                        photo.own[0], self.keep(photo), original, crops, shown)
        return self._guarded(run)

    def edit_kept(self, token, values, dataset=None):
        """`edit` of the open photo under `token` (the page's session state), or a message saying why not."""
        photo = self.recall(token)
        if photo is None and token is not None:
            return View(f"The photo was closed to make room for newer ones (the app keeps the {self.max_photos} "
                        "most recently used): upload it again.")
        return self.edit(photo, values, dataset)

    def edit(self, photo, values, dataset=None):
        """The open photo translated to the controls' `values` (a slider's clamped to 0..1), or a message saying why
        not; when no control differs from where the upload set it, the message says nothing was changed."""
        if photo is None:
            return View("Upload a photo first.")

        def run():
            clamped = self.clamped(values)
            result = self.render(photo, clamped, dataset)
            png, shown = self.save(result, photo.name)
            return View(self.edit_message(photo, clamped, dataset), photo, result, png, shown=shown)
        return self._guarded(run)

    def full_size_kept(self, token, values, dataset=None):
        """`full_size` of the open photo under `token` (the page's session state), or a message saying why not."""
        photo = self.recall(token)
        if photo is None:
            return self.edit_kept(token, values, dataset)  # its message: upload first, or upload again
        return self.full_size(photo, values, dataset)

    def full_size(self, photo, values, dataset=None):
        """The upload itself, not its scaled-down working copy, edited as the controls' `values` edit the working copy
        (the same controls moved from the same start): a View whose `png` is the download (through edit_photo, byte
        for byte what translate --align_faces writes for the same label); or a message. Only photos with faces keep
        their upload for this."""
        if photo.original is None:
            return View(f"{photo.name} has no full-size edit: a photo within {self.work_side} pixels a side is edited "
                        "at its own size, and one without a face has its centre square translated.")

        def run():
            with open(photo.original, "rb") as f:
                pixels = faces.decode_photo(f.read(), self.budget)
            clamped = self.clamped(values)
            whole = (dataclasses.replace(photo, pixels=pixels, first=None, original=None) if photo.in_graph
                     else self._open(pixels, photo.name, ""))
            if not len(whole.landmarks):
                return View(f"{photo.name}: no face was found in the full-size photo; the download stays the working "
                            "copy's result.")
            result = self.render(whole, clamped, dataset, start=photo.own[0])
            path = write_atomic(os.path.join(self.folder(), stem(photo.name) + "-stargan-full.png"),
                                tf.io.encode_png(result).numpy())
            return View(f"{photo.name}: the full-size result ({result.shape[1]} x {result.shape[0]}) is ready: "
                        "download it below.", photo, png=path)
        return self._guarded(run)

    def clamped(self, values):
        """The controls' `values` as the page shows them: a slider's clamped to 0..1 (Control.clamp)."""
        return [c.clamp(v) for c, v in zip(self.controls, values, strict=True)]

    def edit_message(self, photo, values, dataset=None):
        """The status after an edit: what the photo was translated to, or that no attribute was changed from the
        values the upload set (the result is then the upload's)."""
        described = self.describe(values, dataset)
        if values != photo.own[0] or (dataset or self.layout.datasets[0]) != self.layout.datasets[0]:
            return f"{photo.name}: translated to {described}."
        own = "the photo's own values" if self.translator.can_classify else "the values the controls started at"
        return (f"{photo.name}: no attribute was changed from {own} ({described}), so the result is the upload's; "
                "move a control to edit the photo.")

    @staticmethod
    def _guarded(run):
        """run()'s View, or one with a message for any error: the page never shows a traceback (the log does)."""
        try:
            return run()
        except PhotoError as e:
            return View(str(e))
        except Exception as e:  # anything else: logged, and a message in the page
            traceback.print_exc()
            return View(plain(f"Something went wrong ({type(e).__name__}: {e}); the server's log has the details."))


def stem(name):
    """The file name without its folder and extension."""
    return os.path.splitext(os.path.basename(name))[0]


THEME_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # local fonts: the page loads nothing from elsewhere


def build_page(editor):
    """The Gradio layout over `editor`: upload (another photo at any time), controls, original / crops / result,
    download; queued one at a time. The edits skip Gradio's slider check (an error toast and a traceback for a typed
    5): Editor.edit clamps the values, as the page does."""
    import gradio as gr

    controls = editor.controls
    datasets = editor.layout.datasets
    with gr.Blocks(title="StarGAN: edit your own photos", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as page:
        gr.Markdown("## StarGAN: edit your own photos\nUpload or drop a photo, then move a control.")
        photo = gr.State(None, delete_callback=editor.close)  # the key of the session's open photo in the editor
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photo (JPEG, PNG, GIF or BMP)", type="filepath", elem_id="upload")
                another = gr.UploadButton("Upload another photo", type="filepath", size="sm", visible=False,
                                          elem_id="another")
                dataset = gr.Radio(list(datasets), value=datasets[0], label="Label of", visible=len(datasets) > 1)
                widgets = [gr.Radio(c.choices, value=c.default, label=c.label, info=c.info) if c.choice
                           else gr.Slider(0.0, 1.0, value=0.0, step=SLIDER_STEP, label=c.label) for c in controls]
                button = gr.Button("Translate", variant="primary")
                message = gr.Textbox(label="Status", interactive=False, lines=3, elem_id="message")
            with gr.Column(scale=2):
                with gr.Row():
                    original = gr.Image(label="Original", format="png", interactive=False, elem_id="original",
                                        height=IMAGE_HEIGHT, buttons=["fullscreen"])
                    result = gr.Image(label="Result", format="png", interactive=False, elem_id="result",
                                      height=IMAGE_HEIGHT, buttons=["fullscreen"])  # the download: below
                crops = gr.Gallery(label="What the model sees (each face aligned, or the centre square)", format="png",
                                   columns=6, height=200, object_fit="contain", preview=False, fit_columns=False,
                                   elem_id="crops")
                full = gr.Button("Full size: edit the photo itself, not its working copy", size="sm",
                                 visible=False, elem_id="full")
                download = gr.File(label="Download the result (PNG)", interactive=False, elem_id="download")

        def on_upload(path, previous):
            editor.close(previous)
            if not path:
                return {message: "Upload a photo."}
            with open(path, "rb") as f:
                view = editor.upload(f.read(), os.path.basename(path))
            if view.photo is None:
                return {photo: None, message: view.message, original: None, crops: None, result: None,
                        download: None, another: gr.update(visible=True), full: gr.update(visible=False)}
            return {photo: view.token, message: view.message, original: view.original, crops: view.crops,
                    result: view.shown, download: view.png, another: gr.update(visible=True),
                    full: gr.update(visible=view.photo.original is not None),
                    **dict(zip(widgets, view.values, strict=True))}

        def on_another(path, previous):
            """An upload from the button: it replaces the open photo, and the upload box names the new one."""
            return {**on_upload(path, previous), upload: path} if path else {}

        def on_clear(previous):
            """x on the upload: the photo is closed, every view emptied and the controls back at their defaults."""
            editor.close(previous)
            return {photo: None, message: "Upload a photo.", original: None, crops: None, result: None,
                    download: None, another: gr.update(visible=False), full: gr.update(visible=False),
                    **dict(zip(widgets, editor.defaults, strict=True))}

        def on_edit(token, chosen, *values):
            view = editor.edit_kept(token, list(values), chosen)
            if view.result is None:
                return {message: view.message}
            return {message: view.message, result: view.shown, download: view.png}

        def on_full(token, chosen, *values):
            view = editor.full_size_kept(token, list(values), chosen)
            return {message: view.message, download: view.png} if view.png else {message: view.message}

        shared = dict(concurrency_limit=1, concurrency_id="model", trigger_mode="always_last")
        views = [photo, message, original, crops, result, download, another, full, *widgets]
        upload.upload(on_upload, [upload, photo], views, **shared)
        another.upload(on_another, [another, photo], [upload, *views], **shared)
        upload.clear(on_clear, [photo], views, **shared)
        edit_inputs, edit_outputs = [photo, dataset, *widgets], [message, result, download]
        edit = dict(shared, preprocess=False)  # raw slider values: a typed 5 is clamped by Editor.edit, not refused
        for control, widget in zip(controls, widgets, strict=True):
            (widget.input if control.choice else widget.release)(on_edit, edit_inputs, edit_outputs, **edit)
        dataset.input(on_edit, edit_inputs, edit_outputs, **edit)
        button.click(on_edit, edit_inputs, edit_outputs, **edit)
        full.click(on_full, edit_inputs, [message, download], **edit)
    return page


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_options(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--share", action="store_true", help="also ask Gradio for a public link (off by default)")
    parser.add_argument("--no_align_faces", action="store_true",
                        help="always translate the photo's centre square, even when faces could be aligned")
    return parser.parse_args(argv)


def load_editor(args):
    """The Editor of the model the options pick; from a checkpoint folder with the edit_photo graph an export made with
    --include_faces has, when faces are aligned and the faces extra is installed."""
    in_graph = not args.no_align_faces and faces.extra_installed()
    return Editor(load_translator(args, classifier=True, align_faces=in_graph), not args.no_align_faces,
                  args.max_pixels)


def running_line(local_url, share_url, share):
    """Where the page is, naming our --share flag (Gradio's own hint names its share=True argument)."""
    if share_url:
        return f"Running on {local_url} and publicly on {share_url}"
    if share:
        return f"Running on {local_url} only: Gradio could not make the public link (see above)"
    return f"Running on {local_url} ; pass --share for a public link"


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        return fail(f"the app needs Gradio; install the app extra: {APP_HINT}")
    try:
        editor = load_editor(args)
    except (ValueError, FileNotFoundError) as e:
        return fail(e)
    atexit.register(shutil.rmtree, editor.out_dir, True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: Gradio closes, the results are removed
    page = build_page(editor)
    page.queue(default_concurrency_limit=1, max_size=32)
    theme = gr.themes.Default(font=THEME_FONTS, font_mono=["ui-monospace", "monospace"])
    _, local_url, share_url = page.launch(
        server_name="127.0.0.1", server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD, theme=theme,
        ssr_mode=False, footer_links=[], state_session_capacity=MAX_SESSIONS, quiet=True, prevent_thread_lock=True)
    print(running_line(local_url, share_url, args.share), flush=True)
    page.block_thread()  # until Ctrl-C or SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
