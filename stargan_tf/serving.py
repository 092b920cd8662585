"""The generator as a servable `tf.Module`: signatures for TF Serving, kept apart from training.

Signatures (the contract clients rely on):
  serving_default: image float32 (N, H, W, 3) in [-1, 1], label float32 (N, c_dim) -> image (same layout)
  translate_bytes: image_bytes string (N,) JPEG/PNG/GIF/BMP of any size and mode, label -> image_bytes (N,) PNG
  metadata: () -> attribute_names string (c_dim,), image_size int32 (), exclusive_group int32 (c_dim,),
            label_dataset string (c_dim,), max_pixels int64 (), crop_size int32 () (the last two added later: older
            exports lack them; crop_size is the training crop of an aligned 178 x 218 face, see faces.py)
  classify (only in exports made with --include_classifier): image_bytes string (N,) -> probabilities float32
            (N, c_dim): D's classification head on the same centre square translate_bytes sees; sigmoid per
            attribute of a CelebA-layout part, softmax over a folder dataset's classes, 0 for the mask entries
Inputs are checked inside the graph, so a wrong shape, undecodable bytes or an image whose header declares more
than max_pixels pixels raise InvalidArgumentError, the last before any pixel is decoded.
"""

import tensorflow as tf

from stargan_tf import domains, preprocessing


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


def decode_square(image_bytes, image_size, max_pixels=preprocessing.MAX_PIXELS):
    """Bytes of one image -> float32 (image_size, image_size, 3) in [-1, 1]: RGB, centre square, resize,
    the training preprocessing with the crop taken as the photo's largest centred square."""
    image = preprocessing.decode_image(image_bytes, None, "image_bytes holds no JPEG, PNG, GIF or BMP image;",
                                       max_pixels)
    return preprocessing.preprocess(image, None, image_size)


def encode_png(image):
    """float32 (H, W, 3) in [-1, 1] -> PNG bytes (rounded to 8 bits)."""
    pixels = tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)
    return tf.io.encode_png(pixels)


class GeneratorServer(tf.Module):
    """Wraps a trained generator with the serving signatures and its label metadata."""

    def __init__(self, generator, attribute_names, image_size, exclusive_group=None, label_dataset=None,
                 max_pixels=preprocessing.MAX_PIXELS, crop_size=178, discriminator=None):
        super().__init__(name="stargan_generator")
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"--max_pixels must be a positive integer, got {max_pixels!r}")
        self.max_pixels = max_pixels
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
            tf.TensorSpec([None, c_dim], tf.float32, name="label")])
        self.translate_bytes = tf.function(self._translate_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None, c_dim], tf.float32, name="label")])
        self.metadata = tf.function(self._metadata, input_signature=[])
        self.classify = None
        if discriminator is not None:  # D's weights are stored only then: exports stay G-only by default
            self.discriminator_variables = [getattr(v, "value", v) for v in discriminator.weights]
            object.__setattr__(self, "_discriminator", discriminator)
            layout = domains.LabelLayout.from_metadata(list(attribute_names), exclusive_group, label_dataset)
            self._heads = [(spec.dim, spec.one_hot) for _, spec in layout.parts]
            self._mask_width = c_dim - layout.cls_dim
            self.classify = tf.function(self._classify, input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes")])

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
        checks = [_assert_shape(image, [None, size, size, 3], "image"), *self._check_label(label),
                  _assert_same_batch(image, label, "serving_default")]
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
                "crop_size": tf.constant(self.crop_size, tf.int32)}

    def signatures(self):
        found = {"serving_default": self.serving_default, "translate_bytes": self.translate_bytes,
                 "metadata": self.metadata}
        return found if self.classify is None else {**found, "classify": self.classify}


def save(server, directory):
    """Write the SavedModel with its signatures (three, or four with classify) into `directory` (must not exist)."""
    tf.saved_model.save(server, directory, signatures=server.signatures())
