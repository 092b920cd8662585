"""The generator as a servable `tf.Module`: signatures for TF Serving, kept apart from training.

Signatures (the contract clients rely on):
  serving_default: image float32 (N, H, W, 3) in [-1, 1], label float32 (N, c_dim) -> image (same layout)
  translate_bytes: image_bytes string (N,) JPEG/PNG/GIF/BMP of any size and mode, label -> image_bytes (N,) PNG; the
            centre square of the photo as shown (turned by its EXIF orientation; a GIF's first frame)
  metadata: () -> attribute_names string (c_dim,), image_size int32 (), exclusive_group int32 (c_dim,),
            label_dataset string (c_dim,), max_pixels int64 (), crop_size int32 () (the last two added later: older
            exports lack them; crop_size is the training crop of an aligned 178 x 218 face, see faces.py)
  classify (only in exports made with --include_classifier): image_bytes string (N,) -> probabilities float32
            (N, c_dim): D's classification head on the same centre square translate_bytes sees; sigmoid per
            attribute of a CelebA-layout part, softmax over a folder dataset's classes, 0 for the mask entries
  edit_photo (only in exports made with --include_faces): image_bytes string (N,), label float32 (N, c_dim) ->
            image_bytes (N,) PNG of the whole photo as shown (EXIF orientation applied) with every face found
            (mtcnn score >= 0.95, the max_faces best) aligned like CelebA, translated to the label, warped back
            and blended, every other pixel as decoded; num_faces int32 (N,) every face found, num_edited int32 (N,)
            those edited (at most max_faces), boxes float32 (N, max_faces, 4) x, y, width, height, landmarks
            (N, max_faces, 5, 2) (x, y), scores (N, max_faces), zero-padded; a photo without a face comes back
            unchanged with num_faces 0. metadata then has faces (True) and max_faces (others lack both). For Python
            callers the export also holds edit_pixels (one decoded photo: pixels uint8 (H, W, 3), label (c_dim,) ->
            image uint8 and the counts, boxes, landmarks and scores of one photo), not a signature; its caller
            decoded the photo, so it applies the pixel budget itself
  edit_photo_auto (exports with both, of one dataset's label): edit_photo's inputs and set float32 (N, c_dim) ->
            its outputs and own float32 (N, max_faces, c_dim): every face keeps its own attributes (D's prediction on
            its crop, rounded: translate --source auto) but the entries set marks (1), which take label's values;
            edit_pixels_auto is its edit_pixels (label and set (c_dim,))
Inputs are checked inside the graph, so a wrong shape, NaN or inf pixels, undecodable bytes or an image whose header
declares more than max_pixels pixels raise InvalidArgumentError, the last before any pixel is decoded.
"""

import tensorflow as tf

from stargan_tf import domains, face_graph, faces, preprocessing


def _assert_shape(tensor, expected, what):
    """Assert `tensor` has rank len(expected) and the given sizes where `expected` is not None."""
    shape = tf.shape(tensor, out_type=tf.int64)
    rank_ok = tf.equal(tf.size(shape), len(expected))
    padded = tf.concat([shape, tf.zeros([len(expected)], tf.int64)], axis=0)[: len(expected)]
    checks = [tf.equal(padded[i], e) for i, e in enumerate(expected) if e is not None]
    ok = tf.logical_and(rank_ok, tf.reduce_all(tf.stack(checks))) if checks else rank_ok
    want = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ")"
    return tf.debugging.Assert(ok, [f"{what} must have shape {want}; got shape", shape], summarize=8)


def _assert_same_batch(a, b, what):
    return tf.debugging.Assert(tf.equal(tf.shape(a)[0], tf.shape(b)[0]),
                               [f"{what}: image and label batch sizes differ:", tf.shape(a)[0], tf.shape(b)[0]])


def _after(checks, *tensors):
    """`tensors`, usable only once every check has passed (asserts otherwise race the ops they guard)."""
    with tf.control_dependencies(checks):
        return [tf.identity(t) for t in tensors]


# The photo's EXIF orientation and its turn: one reader, preprocessing's, for every path a photo enters.
def decode_square(image_bytes, image_size, max_pixels=preprocessing.MAX_PIXELS):
    """Bytes of one image -> float32 (image_size, image_size, 3) in [-1, 1]: RGB, centre square, resize,
    the training preprocessing with the crop taken as the largest centred square of the photo as viewers show it:
    turned upright by its EXIF orientation first (the uint8 image; the crop does not commute with the turn when the
    sides differ by an odd number, as its rounding keeps the extra row or column on one side)."""
    return preprocessing.preprocess(decode_photo(image_bytes, max_pixels), None, image_size)


def decode_photo(image_bytes, max_pixels=preprocessing.MAX_PIXELS):
    """Bytes of one image -> uint8 (H, W, 3) RGB of the whole photo as viewers show it (turned upright by its EXIF
    orientation, preprocessing.decode_shown, as faces.decode_photo), after the pixel budget check."""
    return preprocessing.decode_shown(image_bytes, None, "image_bytes holds no JPEG, PNG, GIF or BMP image;",
                                      max_pixels)


def to_uint8(image):
    """float32 in [-1, 1] -> uint8, as encode_png rounds it."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def encode_png(image):
    """float32 (H, W, 3) in [-1, 1] -> PNG bytes (rounded to 8 bits)."""
    return tf.io.encode_png(to_uint8(image))


class GeneratorServer(tf.Module):
    """Wraps a trained generator with the serving signatures and its label metadata."""

    def __init__(self, generator, attribute_names, image_size, exclusive_group=None, label_dataset=None,
                 max_pixels=preprocessing.MAX_PIXELS, crop_size=faces.DEFAULT_CROP_SIZE, discriminator=None,
                 detector=None, max_faces=8):
        super().__init__(name="stargan_generator")
        self.max_pixels = preprocessing.check_max_pixels(max_pixels)
        c_dim = len(attribute_names)
        # Track the generator's tf.Variables themselves, not the Keras model: TF Serving's (TF1 session)
        # loader only restores variables reached this way (keras-team/keras#19274), and each is stored once.
        self.generator_variables = [getattr(v, "value", v) for v in generator.weights]
        object.__setattr__(self, "_generator", generator)  # called, not tracked
        self.image_size = int(image_size)
        self.crop_size = int(crop_size)
        self.c_dim = c_dim
        exclusive_group, label_dataset = list(exclusive_group or [-1] * c_dim), list(label_dataset or [""] * c_dim)
        self._names = tf.constant(list(attribute_names), tf.string)
        self._groups = tf.constant(exclusive_group, tf.int32)
        self._label_dataset = tf.constant(label_dataset, tf.string)
        size = self.image_size
        self.serving_default = tf.function(self._translate_tensor, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name="image"),
            tf.TensorSpec([None, c_dim], tf.float32, name="label")], autograph=False)
        self.translate_bytes = tf.function(self._translate_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None, c_dim], tf.float32, name="label")], autograph=False)
        self.metadata = tf.function(self._metadata, input_signature=[], autograph=False)
        self.classify = None
        if discriminator is not None:  # D's weights are stored only then: exports stay G-only by default
            self.discriminator_variables = [getattr(v, "value", v) for v in discriminator.weights]
            object.__setattr__(self, "_discriminator", discriminator)
            layout = domains.LabelLayout.from_metadata(list(attribute_names), exclusive_group, label_dataset)
            self._heads = [(spec.dim, spec.one_hot) for _, spec in layout.parts]
            self._mask_width = c_dim - layout.cls_dim
            self.classify = tf.function(self._classify, input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes")], autograph=False)
        self.edit_photo = self.edit_pixels = self.edit_pixels_auto = None
        self.max_faces = int(max_faces)
        if detector is not None:  # mtcnn's weights (face_graph.FaceDetector) are stored only then
            if self.max_faces < 1:
                raise ValueError(f"--max_faces must be a positive integer, got {max_faces!r}")
            self.detector = detector
            self.edit_photo = tf.function(self._edit_photo, input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes"),
                tf.TensorSpec([None, c_dim], tf.float32, name="label")], autograph=False)
            # For Python callers holding the decoded photo (the app): not a signature, a function of the SavedModel.
            self.edit_pixels = tf.function(self._edit_pixels, input_signature=[
                tf.TensorSpec([None, None, 3], tf.uint8, name="pixels"),
                tf.TensorSpec([c_dim], tf.float32, name="label")], autograph=False)
        self.edit_photo_auto = None
        if detector is not None and discriminator is not None and len(layout.parts) == 1:
            (_, spec), = layout.parts
            self._auto_groups, self._auto_one_hot = [list(g) for g in spec.exclusive_groups], spec.one_hot
            self.edit_photo_auto = tf.function(self._edit_photo_auto, input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes"),
                tf.TensorSpec([None, c_dim], tf.float32, name="label"),
                tf.TensorSpec([None, c_dim], tf.float32, name="set")], autograph=False)
            self.edit_pixels_auto = tf.function(self._edit_pixels_auto, input_signature=[
                tf.TensorSpec([None, None, 3], tf.uint8, name="pixels"),
                tf.TensorSpec([c_dim], tf.float32, name="label"), tf.TensorSpec([c_dim], tf.float32, name="set")],
                autograph=False)

    def _check_label(self, label):
        shape_ok = _assert_shape(label, [None, self.c_dim], "label")
        in_range = tf.reduce_all(tf.logical_and(label >= 0.0, label <= 1.0))
        return [shape_ok, tf.debugging.Assert(in_range, ["label values must lie in [0, 1]; got min/max",
                                                         tf.reduce_min(label), tf.reduce_max(label)])]

    def _generate(self, image, label):
        """G's output, or (0, H, W, 3) for an empty batch (the model returns a wrong channel count for one)."""
        size = self.image_size
        return tf.cond(tf.shape(image)[0] > 0,
                       lambda: tf.cast(self._generator([image, label], training=False), tf.float32),
                       lambda: tf.zeros([0, size, size, 3], tf.float32))

    def _translate_tensor(self, image, label):
        size = self.image_size
        shape = _assert_shape(image, [None, size, size, 3], "image")
        with tf.control_dependencies([shape]):  # counted over the rank the shape check passed, never another
            non_finite = tf.math.count_nonzero(~tf.math.is_finite(image))
        checks = [shape, *self._check_label(label), _assert_same_batch(image, label, "serving_default"),
                  tf.debugging.Assert(tf.equal(non_finite, 0), ["image values must be finite; NaN or inf found in",
                                                                non_finite, "values"])]
        image, label = _after(checks, image, label)
        return {"image": self._generate(image, label)}

    def _translate_bytes(self, image_bytes, label):
        checks = [_assert_shape(image_bytes, [None], "image_bytes"), *self._check_label(label),
                  _assert_same_batch(image_bytes, label, "translate_bytes")]
        image_bytes, label = _after(checks, image_bytes, label)
        # One image at a time: each is checked against the pixel budget, but a request holding several large ones
        # would still decode them side by side.
        images = self._decode_all(image_bytes)
        fake = self._generate(images, label)
        png = tf.map_fn(encode_png, fake, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"image_bytes": png}

    def _decode_all(self, image_bytes):
        """Every image's centre square at the model's size, one decoded at a time (each checked on its budget)."""
        return tf.map_fn(lambda b: decode_square(b, self.image_size, self.max_pixels), image_bytes,
                         fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32),
                         parallel_iterations=1)

    def crop_images(self, crops):
        """uint8 squares (N, c, c, 3) -> the model's float32 inputs (N, image_size, image_size, 3): what
        translate_bytes and classify make of each square sent as a PNG."""
        return tf.map_fn(lambda crop: preprocessing.preprocess(crop, None, self.image_size), crops,
                         fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32))

    def own_labels(self, images):
        """float32 (N, c_dim) 0/1: each image's attributes as D predicts them, rounded as translate --source auto
        rounds them (domains.predicted_part: an exclusive group's most likely member when at least 0.5)."""
        probabilities = self.probabilities(self._discriminator(images, training=False)[1])
        columns = tf.unstack(tf.cast(probabilities >= 0.5, tf.float32), num=self.c_dim, axis=1)
        for members in self._auto_groups:
            group = tf.gather(probabilities, members, axis=1)
            best = tf.one_hot(tf.argmax(group, axis=1), len(members))
            chosen = best if self._auto_one_hot else best * tf.cast(tf.reduce_max(group, axis=1) >= 0.5, tf.float32)[
                :, None]
            for k, i in enumerate(members):
                columns[i] = chosen[:, k]
        return tf.stack(columns, axis=1)

    def auto_targets(self, own, label, chosen):
        """float32 (N, c_dim): each face's `own` attributes with the entries `chosen` (c_dim,) marks (> 0.5) set to
        `label` (c_dim,), as translate --source auto --set: the other members of a set entry's exclusive group are
        scaled by (1 - value) (domains.set_attribute)."""
        chosen = chosen > 0.5
        columns = tf.unstack(tf.where(chosen, label, own), num=self.c_dim, axis=1)
        for members in self._auto_groups:
            kept = tf.reduce_prod(tf.where(tf.gather(chosen, members), 1.0 - tf.gather(label, members), 1.0))
            for i in members:
                columns[i] = tf.where(chosen[i], label[i], own[:, i] * kept)
        return tf.stack(columns, axis=1)

    def edit_one(self, image_bytes, label, chosen=None):
        """One photo's edit_photo outputs (PNG bytes, counts, padded boxes, landmarks, scores) for `label` (c_dim,);
        with `chosen` (edit_photo_auto) each face keeps its own attributes but those `chosen` marks, and "own"
        (max_faces, c_dim) holds them."""
        out = self.edit_decoded(decode_photo(image_bytes, self.max_pixels), label, chosen)
        return {"image_bytes": tf.io.encode_png(out.pop("image")), **out}

    def edit_decoded(self, pixels, label, chosen=None):
        """edit_one on a decoded photo, uint8 (H, W, 3): "image" (uint8, the photo with every face edited) instead of
        its PNG."""
        found = self.detector.detect(pixels, self.max_faces)
        count = found["num_faces"]
        matrices = face_graph.face_matrices(found["landmarks"][:count])
        padding = [[0, self.max_faces - count], [0, 0]]

        def with_faces():
            """face_graph.translate_photo, with the labels made from the crops (no face: not called, as an empty
            batch's convolution fails on CPU)."""
            images = self.crop_images(face_graph.training_crops(pixels, matrices, self.crop_size))
            own = tf.zeros([count, self.c_dim]) if chosen is None else self.own_labels(images)
            labels = tf.tile(label[None], [count, 1]) if chosen is None else self.auto_targets(own, label, chosen)
            translated = to_uint8(self._generate(images, labels))
            return face_graph.paste_back(pixels, matrices, translated, self.crop_size), tf.pad(own, padding)

        edited, own = tf.cond(count > 0, with_faces, lambda: (pixels, tf.zeros([self.max_faces, self.c_dim])))
        out = {"image": edited, "num_faces": found["num_found"], "num_edited": count,
               "boxes": found["boxes"], "landmarks": found["landmarks"], "scores": found["scores"]}
        return out if chosen is None else {**out, "own": tf.reshape(own, [self.max_faces, self.c_dim])}

    def _edit_pixels(self, pixels, label, chosen=None):
        pixels, label = _after([_assert_shape(pixels, [None, None, 3], "pixels"), *self._check_label(label[None])],
                               pixels, label)
        return self.edit_decoded(pixels, label, chosen)

    def _edit_pixels_auto(self, pixels, label, chosen):
        return self._edit_pixels(pixels, label, chosen)

    def _output_spec(self, auto):
        count = self.max_faces
        spec = {"image_bytes": tf.TensorSpec([], tf.string), "num_faces": tf.TensorSpec([], tf.int32),
                "num_edited": tf.TensorSpec([], tf.int32), "boxes": tf.TensorSpec([count, 4], tf.float32),
                "landmarks": tf.TensorSpec([count, 5, 2], tf.float32), "scores": tf.TensorSpec([count], tf.float32)}
        return {**spec, "own": tf.TensorSpec([count, self.c_dim], tf.float32)} if auto else spec

    def _edit_photo(self, image_bytes, label):
        checks = [_assert_shape(image_bytes, [None], "image_bytes"), *self._check_label(label),
                  _assert_same_batch(image_bytes, label, "edit_photo")]
        image_bytes, label = _after(checks, image_bytes, label)
        # One photo at a time, as translate_bytes decodes: each is checked on its budget before decoding.
        return tf.map_fn(lambda args: self.edit_one(*args), (image_bytes, label),
                         fn_output_signature=self._output_spec(False), parallel_iterations=1)

    def _edit_photo_auto(self, image_bytes, label, chosen):
        checks = [_assert_shape(image_bytes, [None], "image_bytes"), *self._check_label(label),
                  _assert_shape(chosen, [None, self.c_dim], "set"),
                  _assert_same_batch(image_bytes, label, "edit_photo_auto"),
                  _assert_same_batch(image_bytes, chosen, "edit_photo_auto (set)")]
        image_bytes, label, chosen = _after(checks, image_bytes, label, chosen)
        return tf.map_fn(lambda args: self.edit_one(*args), (image_bytes, label, chosen),
                         fn_output_signature=self._output_spec(True), parallel_iterations=1)

    def probabilities(self, logits):
        """D's class logits (N, cls_dim) -> (N, c_dim): sigmoid or softmax per dataset's part, mask entries 0."""
        parts = tf.split(tf.cast(logits, tf.float32), [dim for dim, _ in self._heads], axis=1)
        out = [tf.nn.softmax(p, axis=1) if one_hot else tf.sigmoid(p)
               for p, (_, one_hot) in zip(parts, self._heads, strict=True)]
        return tf.concat([*out, tf.zeros([tf.shape(logits)[0], self._mask_width], tf.float32)], axis=1)

    def _classify(self, image_bytes):
        image_bytes, = _after([_assert_shape(image_bytes, [None], "image_bytes")], image_bytes)
        images = self._decode_all(image_bytes)
        cls_dim = sum(dim for dim, _ in self._heads)
        logits = tf.cond(tf.shape(images)[0] > 0,
                         lambda: tf.cast(self._discriminator(images, training=False)[1], tf.float32),
                         lambda: tf.zeros([0, cls_dim], tf.float32))
        return {"probabilities": self.probabilities(logits)}

    def _metadata(self):
        return {"attribute_names": tf.identity(self._names), "image_size": tf.constant(self.image_size, tf.int32),
                "exclusive_group": tf.identity(self._groups), "label_dataset": tf.identity(self._label_dataset),
                "max_pixels": tf.constant(self.max_pixels, tf.int64),
                "crop_size": tf.constant(self.crop_size, tf.int32),
                # Only with edit_photo: an export without it keeps the metadata of earlier versions, key for key.
                **({} if self.edit_photo is None else {"faces": tf.constant(True),
                                                        "max_faces": tf.constant(self.max_faces, tf.int32)})}

    def signatures(self):
        found = {"serving_default": self.serving_default, "translate_bytes": self.translate_bytes,
                 "metadata": self.metadata}
        if self.classify is not None:
            found["classify"] = self.classify
        if self.edit_photo is not None:
            found["edit_photo"] = self.edit_photo
        if self.edit_photo_auto is not None:
            found["edit_photo_auto"] = self.edit_photo_auto
        return found


def save(server, directory):
    """Write the SavedModel with its signatures (three, and classify, edit_photo when included) into `directory`
    (must not exist)."""
    tf.saved_model.save(server, directory, signatures=server.signatures())
