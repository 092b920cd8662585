"""Faces found, aligned like CelebA, translated and pasted back, as TensorFlow ops only: the one implementation the
export's edit_photo graph, the translate command and the app all run.

  detector = load_detector()                     # P-, R- and O-Net weights read once from mtcnn 1.0.0's wheel
  found = detector.detect(pixels, max_faces=8)   # uint8 (H, W, 3) -> padded boxes, scores, landmarks, counts
  matrices = face_matrices(found["landmarks"][:found["num_faces"]])
  edited = translate_photo(pixels, matrices, fn)  # fn: uint8 crops (N, c, c, 3) -> (N, s, s, 3), as TF ops

The detector repeats mtcnn.MTCNN().detect_faces step by step (pyramid, P-Net, its NMS, R-Net and O-Net on
crop_and_resize patches, box regression, landmarks), searching photos larger than faces.DETECT_SIDE at that size and
keeping faces from faces.MIN_CONFIDENCE; the weights are tf.Variables, so a SavedModel holding the detector needs
neither mtcnn nor numpy at serving time. Each face's 5 landmarks give a similarity transform (least squares) onto
CelebA's mean landmarks in its 178 x 218 aligned frame; one projective-transform op warps the photo into that frame,
and the model's own training crop (`crop_size`, centred) is what it translates. The result is upsampled to the crop,
warped back with the inverse transform at the photo's resolution and blended with a feathered mask; every pixel
where the mask is 0 keeps its bytes.
"""

import functools
import importlib.util
import os

import numpy as np
import tensorflow as tf

from stargan_tf import faces, preprocessing

MAX_FACES = 8
MIN_FACE_SIZE = 20  # mtcnn 1.0.0's defaults (MTCNN().detect_faces)
SCALE_FACTOR = 0.709
CELL = 12  # P-Net's window; it slides with stride 2
PNET_THRESHOLD, RNET_THRESHOLD, ONET_THRESHOLD = 0.6, 0.7, 0.8
PNET_NMS_SCALE, PNET_NMS, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7
NMS_BLOCK = 512  # boxes compared at once by _survivors: memory grows with NMS_BLOCK x boxes, not boxes squared
_PYRAMID = (CELL / MIN_FACE_SIZE) * SCALE_FACTOR ** np.arange(64)  # mtcnn's scales, computed as it computes them
_NETS = ("pnet", "rnet", "onet")


def mtcnn_weights():
    """{net: [numpy arrays in Keras get_weights order]} from the installed mtcnn wheel's lz4 files (joblib pickles);
    found without importing mtcnn, which would build its Keras models."""
    import joblib

    spec = importlib.util.find_spec("mtcnn")
    if spec is None:
        raise faces.FacesExtraMissing(f"the face detector's weights come with mtcnn; install the faces extra: "
                                      f"{faces.INSTALL_HINT}")
    folder = os.path.join(spec.submodule_search_locations[0], "assets", "weights")
    return {net: joblib.load(os.path.join(folder, f"{net}.lz4")) for net in _NETS}


@functools.cache
def load_detector():
    """The FaceDetector with the faces extra's weights, built once per process; FacesExtraMissing says how to install
    the extra when mtcnn, lz4 or joblib is missing."""
    if not faces.extra_installed():
        raise faces.FacesExtraMissing(f"face alignment needs mtcnn, lz4 and joblib; install the faces extra: "
                                      f"{faces.INSTALL_HINT}")
    return FaceDetector.from_mtcnn()


def _conv(x, kernel, bias):
    return tf.nn.conv2d(x, kernel, 1, "VALID") + bias


def _prelu(x, alpha):
    return tf.maximum(x, 0.0) + alpha * tf.minimum(x, 0.0)


def _flatten(x):
    """Keras Permute((2, 1, 3)) + Flatten, as mtcnn's R- and O-Net flatten (Caffe's column order)."""
    x = tf.transpose(x, [0, 2, 1, 3])
    return tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]])


def _overlap(a, b, minimum):
    """(len(a), len(b)) intersection over union (or over the smaller area) of x1, y1, x2, y2 boxes, as mtcnn's iou."""
    area_a, area_b = [(x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1]) for x in (a, b)]
    a, b = a[:, None], b[None]
    width = tf.maximum(0.0, tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]))
    height = tf.maximum(0.0, tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]))
    inter = width * height
    if minimum:
        return inter / tf.minimum(area_a[:, None], area_b[None])
    return inter / (area_a[:, None] + area_b[None] - inter)


def _survivors(boxes, threshold, minimum=False):
    """bool (N,): mtcnn's NMS on boxes sorted by falling score. Unlike greedy NMS (tf.image.non_max_suppression),
    a box is dropped when any higher-scored box overlaps it by more than `threshold`, itself dropped or not."""
    n = tf.shape(boxes)[0]
    chunks = (n + NMS_BLOCK - 1) // NMS_BLOCK
    padded = tf.pad(boxes, [[0, chunks * NMS_BLOCK - n], [0, 0]])

    def suppressed(chunk):
        start = chunk * NMS_BLOCK
        above = boxes[: start + NMS_BLOCK]  # only higher-scored boxes can suppress
        overlap = _overlap(above, padded[start : start + NMS_BLOCK], minimum)
        earlier = tf.range(tf.shape(above)[0])[:, None] < start + tf.range(NMS_BLOCK)[None]
        return tf.reduce_any((overlap > threshold) & earlier, axis=0)

    dropped = tf.map_fn(suppressed, tf.range(chunks), fn_output_signature=tf.TensorSpec([NMS_BLOCK], tf.bool))
    return tf.logical_not(tf.reshape(dropped, [-1])[:n])


def _sorted(scores, *values):
    """`values` ordered by falling score, as mtcnn sorts before its NMS."""
    order = tf.argsort(scores, direction="DESCENDING", stable=True)
    return [tf.gather(v, order) for v in (scores, *values)]


def _nms(scores, boxes, *values, threshold, minimum=False):
    """Sort by score, then keep mtcnn's NMS survivors of every tensor."""
    scores, boxes, *values = _sorted(scores, boxes, *values)
    keep = _survivors(boxes, threshold, minimum)
    return [tf.boolean_mask(v, keep) for v in (scores, boxes, *values)]


def _square(boxes):
    """mtcnn's resize_to_square: each box grown to its longer side around its centre."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    side = tf.maximum(x2 - x1, y2 - y1)
    x1, y1 = x1 + (x2 - x1) * 0.5 - side * 0.5, y1 + (y2 - y1) * 0.5 - side * 0.5
    return tf.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _regress(boxes, offsets):
    """mtcnn's adjust_bboxes: offsets are fractions of the (inclusive) box width and height."""
    w, h = boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0
    return boxes + offsets * tf.stack([w, h, w, h], axis=1)


def _patches(image, boxes, size):
    """mtcnn's extract_patches: crop_and_resize with coordinates divided by the image size (not size - 1), and one
    blank patch more, as a convolution of an empty batch fails on CPU (_dropped removes it from the results)."""
    shape = tf.cast(tf.shape(image)[1:3], tf.float32)
    coords = tf.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3], boxes[:, 2]], axis=1) / tf.tile(shape, [2])
    patches = tf.image.crop_and_resize(image, coords, tf.zeros([tf.shape(boxes)[0]], tf.int32), [size, size])
    return tf.concat([patches, tf.zeros([1, size, size, 3])], 0)


def _dropped(*outputs):
    """The networks' outputs without the blank patch's."""
    return [x[:-1] for x in outputs]


class FaceDetector(tf.Module):
    """mtcnn 1.0.0's three networks with their weights as tf.Variables, and the whole detection as TF ops."""

    def __init__(self, weights, name=None):
        super().__init__(name=name)
        with self.name_scope:
            self.pnet, self.rnet, self.onet = (
                [tf.Variable(w, trainable=False, name=f"{net}_{i}") for i, w in enumerate(weights[net])]
                for net in _NETS)

    @classmethod
    def from_mtcnn(cls):
        """The detector with the weights inside the installed mtcnn wheel (the `faces` extra), read once."""
        return cls(mtcnn_weights())

    @classmethod
    def from_saved(cls, restored):
        """The detector whose weights a loaded SavedModel stored (`loaded.detector`): no mtcnn needed."""
        return cls({net: [v.numpy() for v in getattr(restored, net)] for net in _NETS})

    def _pnet(self, x):
        """Box offsets (1, h, w, 4) and face probability (1, h, w) for every 12 x 12 window, stride 2."""
        w = self.pnet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[0], w[1]), w[2]), 2, 2, "SAME")
        x = _prelu(_conv(x, w[3], w[4]), w[5])
        x = _prelu(_conv(x, w[6], w[7]), w[8])
        return _conv(x, w[9], w[10]), tf.nn.softmax(_conv(x, w[11], w[12]))[..., 1]

    def _rnet(self, x):
        """Box offsets (N, 4) and face probability (N,) of 24 x 24 patches."""
        w = self.rnet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, "SAME")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, "VALID")
        x = _prelu(_conv(x, w[6], w[7]), w[8])
        x = _prelu(_flatten(x) @ w[9] + w[10], w[11])
        return x @ w[12] + w[13], tf.nn.softmax(x @ w[14] + w[15])[:, 1]

    def _onet(self, x):
        """Box offsets (N, 4), landmarks (N, 10) as 5 x then 5 y box fractions, face probability (N,) of 48 x 48
        patches."""
        w = self.onet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, "SAME")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, "VALID")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w[6], w[7]), w[8]), 2, 2, "SAME")
        x = _prelu(_conv(x, w[9], w[10]), w[11])
        x = _prelu(_flatten(x) @ w[12] + w[13], w[14])
        return x @ w[15] + w[16], x @ w[17] + w[18], tf.nn.softmax(x @ w[19] + w[20])[:, 1]

    def _proposals(self, image):
        """P-Net over mtcnn's pyramid: (scores (N,), x1 y1 x2 y2 boxes (N, 4)) after its two NMS rounds, squared."""
        height, width = tf.unstack(tf.cast(tf.shape(image)[1:3], tf.float64))
        side = tf.minimum(height, width)
        count = tf.cast(tf.round(-(tf.math.log(side / CELL) / np.log(SCALE_FACTOR) + 1.0)), tf.int32)
        pyramid = tf.constant(_PYRAMID, tf.float64)[: tf.clip_by_value(count, 0, len(_PYRAMID))]
        pyramid = tf.boolean_mask(pyramid, tf.floor(side * pyramid) >= CELL)  # smaller levels hold no window

        def level(i, scores, boxes):
            scale = pyramid[i]
            size = tf.cast(tf.stack([height, width]) * scale, tf.int32)  # mtcnn truncates
            offsets, probability = self._pnet(tf.image.resize(image, size, method="area"))
            where = tf.where(probability[0] > PNET_THRESHOLD)
            corner = tf.cast(where[:, ::-1] * 2, tf.float32)  # mtcnn's window spans x + 1 .. x + 12 (11 wide)
            found = tf.concat([corner + 1.0, corner + CELL], axis=1) + tf.gather_nd(offsets[0], where) * (CELL - 1)
            found = found / tf.cast(scale, tf.float32)
            kept_scores, kept = _nms(tf.gather_nd(probability[0], where), found, threshold=PNET_NMS_SCALE)
            return i + 1, tf.concat([scores, kept_scores], 0), tf.concat([boxes, kept], 0)

        _, scores, boxes = tf.while_loop(
            lambda i, *_: i < tf.shape(pyramid)[0], level, (0, tf.zeros([0]), tf.zeros([0, 4])),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None, 4])))
        scores, boxes = _nms(scores, boxes, threshold=PNET_NMS)
        return scores, _square(boxes)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)], autograph=False)
    def candidates(self, pixels):
        """Every face mtcnn keeps (score > 0.8) in uint8 RGB `pixels`, by falling score: boxes (N, 4) as x, y, width,
        height, scores (N,), landmarks (N, 5, 2) as (x, y) in faces.KEYPOINTS order, all in `pixels`' pixels. A photo
        larger than faces.DETECT_SIDE is searched at that size (antialiased) and the results scaled back."""
        height, width = tf.unstack(tf.shape(pixels)[:2])
        longest = tf.cast(tf.maximum(height, width), tf.float64)
        factor = tf.minimum(tf.constant(1.0, tf.float64), faces.DETECT_SIDE / longest)
        small_size = tf.maximum(1, tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float64) * factor), tf.int32))
        small = tf.cond(
            factor < 1.0,
            lambda: tf.clip_by_value(tf.round(tf.image.resize(pixels, small_size, antialias=True)), 0.0, 255.0),
            lambda: tf.cast(pixels, tf.float32))
        image = ((small - 127.5) / 128.0)[None]

        scores, boxes = self._proposals(image)
        offsets, scores = _dropped(*self._rnet(_patches(image, boxes, 24)))
        keep = scores > RNET_THRESHOLD
        scores, boxes = _nms(tf.boolean_mask(scores, keep), tf.boolean_mask(_regress(boxes, offsets), keep),
                             threshold=RNET_NMS)
        boxes = _square(boxes)

        offsets, points, scores = _dropped(*self._onet(_patches(image, boxes, 48)))
        size = boxes[:, 2:] - boxes[:, :2] + 1.0
        points = tf.transpose(tf.reshape(points, [-1, 2, 5]), [0, 2, 1]) * size[:, None] + boxes[:, None, :2] - 1.0
        keep = scores > ONET_THRESHOLD
        scores, boxes, points = _nms(tf.boolean_mask(scores, keep), tf.boolean_mask(_regress(boxes, offsets), keep),
                                     tf.boolean_mask(points, keep), threshold=ONET_NMS, minimum=True)

        limit = tf.cast(tf.tile(small_size[::-1] - 1, [2]), tf.float32)  # mtcnn's limit_bboxes (fit_to_image)
        boxes = tf.clip_by_value(boxes, 0.0, limit)
        scale = tf.cast(tf.stack([width, height]), tf.float32) / tf.cast(small_size[::-1], tf.float32)
        boxes = tf.concat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1) * tf.tile(scale, [2])
        return boxes, scores, (points + 0.5) * scale - 0.5

    def detect(self, pixels, max_faces=MAX_FACES, min_confidence=faces.MIN_CONFIDENCE):
        """Faces in uint8 RGB `pixels` (H, W, 3) with score >= `min_confidence`, the `max_faces` best of them left to
        right, zero-padded: {"boxes": (max_faces, 4) x, y, width, height; "scores": (max_faces,); "landmarks":
        (max_faces, 5, 2) (x, y) in faces.KEYPOINTS order; "num_faces": int32 kept; "num_found": int32 above the
        threshold, kept or not}. `max_faces` None: every face found, unpadded."""
        if not 0.0 < min_confidence <= 1.0:
            raise ValueError(f"the face confidence threshold must lie in (0, 1], got {min_confidence:g}")
        boxes, scores, points = self.candidates(tf.convert_to_tensor(pixels, tf.uint8))
        found = tf.reduce_sum(tf.cast(scores >= min_confidence, tf.int32))  # sorted: the first `found` pass
        kept = found if max_faces is None else tf.minimum(found, max_faces)
        order = tf.argsort(tf.reduce_mean(points[:kept, :, 0], axis=1), stable=True)
        boxes, scores, points = (tf.gather(v[:kept], order) for v in (boxes, scores, points))
        if max_faces is None:
            return {"boxes": boxes, "scores": scores, "landmarks": points, "num_faces": kept, "num_found": found}
        pad = max_faces - kept
        return {"boxes": tf.reshape(tf.pad(boxes, [[0, pad], [0, 0]]), [max_faces, 4]),
                "scores": tf.reshape(tf.pad(scores, [[0, pad]]), [max_faces]),
                "landmarks": tf.reshape(tf.pad(points, [[0, pad], [0, 0], [0, 0]]), [max_faces, 5, 2]),
                "num_faces": kept, "num_found": found}


def similarity_transform(src, dst):
    """float64 (..., 3, 3): the rotation + uniform scale + shift sending landmarks `src` (..., N, 2) closest to `dst`
    (N, 2) in least squares (Umeyama 1991, no reflection). In 2-D the rotation-and-scale
    block [[a, -b], [b, a]] is linear in (a, b), so the fit has a closed form; coinciding landmarks (padding) give a
    zero block instead of an error."""
    src, dst = tf.cast(src, tf.float64), tf.cast(dst, tf.float64)
    src_mean, dst_mean = tf.reduce_mean(src, axis=-2, keepdims=True), tf.reduce_mean(dst, axis=-2, keepdims=True)
    s, d = src - src_mean, dst - dst_mean
    norm = tf.reduce_sum(s**2, axis=[-2, -1])
    a = tf.math.divide_no_nan(tf.reduce_sum(s * d, axis=[-2, -1]), norm)
    b = tf.math.divide_no_nan(tf.reduce_sum(s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0], axis=-1), norm)
    block = tf.stack([tf.stack([a, -b], -1), tf.stack([b, a], -1)], -2)
    shift = dst_mean[..., 0, :] - tf.linalg.matvec(block, src_mean[..., 0, :])
    top = tf.concat([block, shift[..., None]], -1)
    bottom = tf.broadcast_to(tf.constant([0.0, 0.0, 1.0], tf.float64), tf.shape(top[..., :1, :]))
    return tf.concat([top, bottom], -2)


def face_matrices(landmarks):
    """float64 (N, 3, 3): each face's transform from photo pixels into CelebA's aligned frame, from its landmarks
    (N, 5, 2) in faces.KEYPOINTS order."""
    return similarity_transform(landmarks, faces.TEMPLATE)


def warp(image, matrix, height, width, fill_mode="CONSTANT"):
    """float32 (height, width, C): output pixel (x, y) is `image` sampled at `matrix` (3 x 3) @ (x, y, 1), bilinear;
    outside the image 0 (CONSTANT) or mirrored (REFLECT)."""
    matrix = tf.cast(matrix, tf.float64)
    transform = tf.cast(tf.reshape(matrix / matrix[2, 2], [9])[:8], tf.float32)[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform,
        output_shape=tf.cast(tf.stack([height, width]), tf.int32), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode=fill_mode)[0]


def _shift(x, y):
    """3 x 3 float64 matrix adding (x, y)."""
    x, y = tf.cast(x, tf.float64), tf.cast(y, tf.float64)
    zero, one = tf.zeros([], tf.float64), tf.ones([], tf.float64)
    return tf.stack([tf.stack([one, zero, x]), tf.stack([zero, one, y]), tf.stack([zero, zero, one])])


def _bounds(matrix, left, top, right, bottom, width, height, margin):
    """int32 x0, y0, x1, y1 covering the rectangle's corners mapped by `matrix`, widened by `margin`, clipped to the
    photo."""
    corners = matrix @ tf.constant([[left, right, left, right], [top, top, bottom, bottom], [1.0] * 4], tf.float64)
    xs, ys = corners[0] / corners[2], corners[1] / corners[2]
    width, height = tf.cast(width, tf.float64), tf.cast(height, tf.float64)
    x0 = tf.clip_by_value(tf.floor(tf.reduce_min(xs) - margin), 0.0, width)
    y0 = tf.clip_by_value(tf.floor(tf.reduce_min(ys) - margin), 0.0, height)
    x1 = tf.clip_by_value(tf.math.ceil(tf.reduce_max(xs) + margin), 0.0, width)
    y1 = tf.clip_by_value(tf.math.ceil(tf.reduce_max(ys) + margin), 0.0, height)
    return [tf.cast(v, tf.int32) for v in (x0, y0, x1, y1)]


def align(pixels, matrix):
    """uint8 (218, 178, 3): the face that `matrix` (photo -> aligned frame) sends into CelebA's aligned frame,
    mirrored beyond the photo's edge; a face much larger than the frame is first resized (antialiased) near the
    frame's scale, so the one bilinear warp does not alias."""
    to_photo = tf.linalg.inv(tf.cast(matrix, tf.float64))
    scale = tf.sqrt(tf.abs(tf.linalg.det(to_photo[:2, :2])))  # photo pixels per aligned pixel
    height, width = tf.unstack(tf.shape(pixels)[:2])
    x0, y0, x1, y1 = _bounds(to_photo, -0.5, -0.5, faces.ALIGNED_WIDTH - 0.5, faces.ALIGNED_HEIGHT - 0.5, width,
                             height, 2 * scale)

    def shrunk():
        span = tf.cast(tf.stack([y1 - y0, x1 - x0]), tf.float64)
        size = tf.maximum(1, tf.cast(tf.round(span / scale), tf.int32))
        source = tf.image.resize(pixels[y0:y1, x0:x1], size, method="bilinear", antialias=True)
        sy, sx = tf.unstack(tf.cast(size, tf.float64) / span)  # half-pixel centres
        to_small = _shift((0.5 - tf.cast(x0, tf.float64)) * sx - 0.5, (0.5 - tf.cast(y0, tf.float64)) * sy - 0.5)
        to_small = to_small @ tf.linalg.diag(tf.stack([sx, sy, tf.ones([], tf.float64)]))
        return warp(source, to_small @ to_photo, faces.ALIGNED_HEIGHT, faces.ALIGNED_WIDTH, "REFLECT")

    def region():  # only what the frame samples (and its bilinear neighbours), never a float copy of the photo
        rx0, ry0, rx1, ry1 = _bounds(to_photo, -0.5, -0.5, faces.ALIGNED_WIDTH - 0.5, faces.ALIGNED_HEIGHT - 0.5,
                                     width, height, 2 * scale + 2)
        inside = (rx1 > rx0) & (ry1 > ry0)
        rx0, ry0 = tf.where(inside, rx0, 0), tf.where(inside, ry0, 0)
        rx1, ry1 = tf.where(inside, rx1, width), tf.where(inside, ry1, height)
        return warp(pixels[ry0:ry1, rx0:rx1], _shift(-rx0, -ry0) @ to_photo, faces.ALIGNED_HEIGHT,
                    faces.ALIGNED_WIDTH, "REFLECT")

    out = tf.cond((scale > faces.SHRINK_ABOVE) & (x1 > x0) & (y1 > y0), shrunk, region)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def training_crops(pixels, matrices, crop_size=faces.DEFAULT_CROP_SIZE):
    """uint8 (N, c, c, 3): each face (matrices (N, 3, 3), photo -> aligned frame) aligned like CelebA and cut to the
    model's training crop (preprocessing.center_crop's square)."""
    size = faces.crop_box(crop_size)[2]
    return tf.map_fn(lambda m: preprocessing.center_crop(align(pixels, m), int(crop_size)), matrices,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8), parallel_iterations=1)


def _placement(matrix, crop_size, height, width):
    """int32 x0, y0, x1, y1: the photo region the crop's square of the aligned frame covers under `matrix`'s inverse,
    with a pixel's margin for the bilinear warp."""
    top, left, size = faces.crop_box(crop_size)
    return _bounds(tf.linalg.inv(matrix), left - 0.5, top - 0.5, left + size - 0.5, top + size - 0.5, width, height, 1)


def _layer(image, crop_size, feather):
    """float32 (218, 178, 4): the translated face (any size, None: none) upsampled onto its crop in the aligned frame,
    and the feathered mask."""
    top, left, size = faces.crop_box(crop_size)
    profile = faces.feather_profile(size, feather)
    mask = tf.constant(np.outer(profile, profile)[..., None], tf.float32)
    face = (tf.zeros([size, size, 3]) if image is None
            else tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear"))
    return tf.pad(tf.concat([face, mask], -1), [[top, faces.ALIGNED_HEIGHT - top - size],
                                               [left, faces.ALIGNED_WIDTH - left - size], [0, 0]])


def paste_back(pixels, matrices, translated, crop_size=faces.DEFAULT_CROP_SIZE, feather=faces.FEATHER):
    """uint8 (H, W, 3): `pixels` with each face's translated crop (translated (N, s, s, 3), any s) upsampled onto its
    crop, warped back by the inverse of its matrix (N, 3, 3) and blended by the feathered mask, face after face;
    pixels where every mask is 0 keep their bytes."""
    matrices = tf.cast(matrices, tf.float64)
    height, width = tf.unstack(tf.shape(pixels)[:2])

    def paste(i, out):
        to_aligned = matrices[i]
        x0, y0, x1, y1 = _placement(to_aligned, crop_size, height, width)

        def blend():
            warped = warp(_layer(translated[i], crop_size, feather), to_aligned @ _shift(x0, y0), y1 - y0, x1 - x0)
            region = out[y0:y1, x0:x1]
            weight = warped[..., 3:]
            mixed = tf.cast(region, tf.float32) + weight * (warped[..., :3] - tf.cast(region, tf.float32))
            mixed = tf.cast(tf.clip_by_value(tf.round(mixed), 0.0, 255.0), tf.uint8)
            row = tf.concat([out[y0:y1, :x0], tf.where(weight > 0, mixed, region), out[y0:y1, x1:]], 1)
            return tf.concat([out[:y0], row, out[y1:]], 0)

        return i + 1, tf.cond((x1 > x0) & (y1 > y0), blend, lambda: out)

    pixels = tf.convert_to_tensor(pixels, tf.uint8)
    _, out = tf.while_loop(lambda i, _: i < tf.shape(matrices)[0], paste, (0, pixels),
                           shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None, 3])))
    return out


def paste_mask(shape, matrices, crop_size=faces.DEFAULT_CROP_SIZE, feather=faces.FEATHER):
    """float32 (H, W) in [0, 1]: for a photo of `shape`, the most any face (matrices (N, 3, 3)) replaces of each pixel
    in paste_back (0: kept as it was)."""
    height, width = int(shape[0]), int(shape[1])
    mask = np.zeros((height, width), np.float32)
    for matrix in tf.unstack(tf.cast(matrices, tf.float64)):
        x0, y0, x1, y1 = (int(v) for v in _placement(matrix, crop_size, height, width))
        if x1 > x0 and y1 > y0:
            warped = warp(_layer(None, crop_size, feather), matrix @ _shift(x0, y0), y1 - y0, x1 - x0)[..., 3]
            mask[y0:y1, x0:x1] = np.maximum(mask[y0:y1, x0:x1], warped.numpy())
    return mask


def translate_photo(pixels, matrices, translate_crops, crop_size=faces.DEFAULT_CROP_SIZE, feather=faces.FEATHER):
    """`pixels` with every face (matrices (N, 3, 3), photo -> aligned frame) translated: `translate_crops` maps the
    training crops, uint8 (N, c, c, 3), to the model's outputs (N, s, s, 3) with TF ops; with no face it is not
    called (a convolution of an empty batch fails on CPU)."""
    pixels = tf.convert_to_tensor(pixels, tf.uint8)
    return tf.cond(
        tf.shape(matrices)[0] > 0,
        lambda: paste_back(pixels, matrices, translate_crops(training_crops(pixels, matrices, crop_size)), crop_size,
                           feather),
        lambda: pixels)
