"""Faces in your own photos, aligned like CelebA's img_align_celeba, translated, and pasted back.

  pixels = decode_photo(payload)                      # uint8 RGB, upright by its EXIF orientation
  found = detect_faces(pixels)                        # mtcnn (the `faces` extra), above MIN_CONFIDENCE
  edited = translate_photo(pixels, found, fn, crop)   # fn: uint8 crops (N, c, c, 3) -> uint8 (N, s, s, 3)

Each face's 5 landmarks give a similarity transform (rotation, uniform scale, shift; least squares) onto CelebA's
mean landmarks in its 178 x 218 aligned frame; one projective-transform op warps the photo into that frame, and
the model's own training crop (`crop_size`, centred) is what it translates. The result is upsampled to the crop,
warped back with the inverse transform at the photo's resolution and blended with a feathered mask; every pixel
where the mask is 0 keeps its bytes.
"""

import dataclasses
import functools
import importlib.resources
import importlib.util

import numpy as np
import tensorflow as tf

from stargan_tf import preprocessing
from stargan_tf.config import CELEBA_CROP_SIZE

ALIGNED_WIDTH, ALIGNED_HEIGHT = 178, 218
# CelebA's mean landmark positions (x, y) in the aligned frame, in mtcnn's keypoint order.
TEMPLATE = np.array([[69, 111], [108, 111], [88, 136], [72, 152], [105, 152]], np.float64)
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MIN_CONFIDENCE = 0.95  # mtcnn keeps faces from 0.8 on, false positives on cluttered photos too (e.g. 0.81)
DETECT_SIDE = 1600  # photos are searched at most this wide/high: mtcnn's landmarks come from 48 x 48 face patches
DEFAULT_CROP_SIZE = CELEBA_CROP_SIZE  # exports older than the crop_size metadata were trained on the default
FEATHER = 12  # aligned-frame pixels: the pasted square is eroded by this (+1), then blurred over as much again
SHRINK_ABOVE = 1.5  # photo pixels per aligned pixel above which the face is first resized (antialiased)
INSTALL_HINT = 'pip install -e ".[faces]" in the clone'


class FacesExtraMissing(ImportError):
    """mtcnn or lz4 is not installed: the message says how to install the `faces` extra."""


class NoFaceError(ValueError):
    """No face above the confidence threshold; the message names the photo."""


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """One detected face: landmarks (5, 2) as photo pixels (x, y) in KEYPOINTS order, mtcnn's confidence and box."""

    landmarks: np.ndarray
    confidence: float = 1.0
    box: tuple | None = None  # (x, y, width, height) in photo pixels

    @property
    def matrix(self):
        """3 x 3 similarity transform from photo pixels to the aligned frame."""
        return similarity_transform(self.landmarks, TEMPLATE)


def similarity_transform(src, dst):
    """The 3 x 3 rotation + uniform scale + shift mapping points `src` (N, 2) closest to `dst` in least squares
    (Umeyama 1991, no reflection)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    variance = (s**2).sum(axis=1).mean()
    if variance == 0:
        raise ValueError("the landmarks coincide: no transform is defined")
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ flip @ vt
    scale = np.trace(np.diag(sigma) @ flip) / variance
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def warp(image, matrix, height, width, fill_mode="CONSTANT"):
    """float32 (height, width, C): output pixel (x, y) is `image` sampled at `matrix` @ (x, y, 1), bilinear; outside
    the image 0 (CONSTANT) or the image mirrored at its edge (REFLECT)."""
    m = np.asarray(matrix, np.float64) / matrix[2, 2]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=tf.constant(m.reshape(-1)[None, :8], tf.float32),
        output_shape=tf.constant([height, width], tf.int32), fill_value=tf.constant(0.0), interpolation="BILINEAR",
        fill_mode=fill_mode)
    return out[0]


def shift(x, y):
    """3 x 3 matrix adding (x, y)."""
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _bounds(matrix, left, top, right, bottom, width, height, margin):
    """Integer (x0, y0, x1, y1) covering the rectangle's corners mapped by `matrix`, widened by `margin`, clipped."""
    corners = matrix @ np.array([[left, right, left, right], [top, top, bottom, bottom], [1.0, 1.0, 1.0, 1.0]])
    xs, ys = corners[0] / corners[2], corners[1] / corners[2]
    x0, y0 = int(np.clip(np.floor(xs.min() - margin), 0, width)), int(np.clip(np.floor(ys.min() - margin), 0, height))
    x1, y1 = int(np.clip(np.ceil(xs.max() + margin), 0, width)), int(np.clip(np.ceil(ys.max() + margin), 0, height))
    return x0, y0, x1, y1


def align(pixels, face):
    """The face in CelebA's aligned frame: uint8 (218, 178, 3); beyond the photo's edge it is mirrored, not black.
    A face much larger than the frame is first resized (antialiased) to about the frame's scale, so the one bilinear
    warp does not alias."""
    to_photo = np.linalg.inv(face.matrix)
    source, to_source = pixels, to_photo
    scale = np.sqrt(abs(np.linalg.det(to_photo[:2, :2])))  # photo pixels per aligned pixel
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = _bounds(to_photo, -0.5, -0.5, ALIGNED_WIDTH - 0.5, ALIGNED_HEIGHT - 0.5, width, height,
                             2 * scale)
    if scale > SHRINK_ABOVE and x1 > x0 and y1 > y0:
        h, w = max(1, round((y1 - y0) / scale)), max(1, round((x1 - x0) / scale))
        source = tf.image.resize(pixels[y0:y1, x0:x1], [h, w], method="bilinear", antialias=True)
        sx, sy = w / (x1 - x0), h / (y1 - y0)  # half-pixel centres: x_small = (x - x0 + 0.5) * sx - 0.5
        to_small = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5], [0, 0, 1.0]])
        to_source = to_small @ to_photo
    else:
        # Only the region the frame samples (and the bilinear neighbours) is warped, never a float copy of the whole
        # photo; where the region meets the photo's edge the mirror is the photo's own.
        x0, y0, x1, y1 = _bounds(to_photo, -0.5, -0.5, ALIGNED_WIDTH - 0.5, ALIGNED_HEIGHT - 0.5, width, height,
                                 2 * scale + 2)
        if x1 > x0 and y1 > y0:
            source = pixels[y0:y1, x0:x1]
            to_source = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0, 0, 1.0]]) @ to_photo
    out = warp(source, to_source, ALIGNED_HEIGHT, ALIGNED_WIDTH, "REFLECT").numpy()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def crop_box(crop_size=DEFAULT_CROP_SIZE):
    """(top, left, size) of the training crop in the aligned frame: preprocessing.center_crop's square."""
    size = min(ALIGNED_WIDTH, ALIGNED_HEIGHT, int(crop_size))
    return round((ALIGNED_HEIGHT - size) / 2), round((ALIGNED_WIDTH - size) / 2), size


def training_crop(aligned, crop_size=DEFAULT_CROP_SIZE):
    """The model's training crop of an aligned face: uint8 (size, size, 3), preprocessing.center_crop's square;
    the model's resize to image_size follows in translation."""
    return preprocessing.center_crop(tf.convert_to_tensor(aligned), int(crop_size)).numpy()


def _feather(size, feather):
    """1-D mask over `size` pixels: ones eroded by `feather` + 1, blurred by a Gaussian truncated at `feather`, so it is
    exactly 0 on the outermost pixels (and, after the bilinear warp, beyond them)."""
    feather = int(max(0, min(feather, (size - 3) // 4)))
    box = np.zeros(size)
    box[feather + 1 : size - feather - 1] = 1.0
    if feather == 0:
        return box
    taps = np.arange(-feather, feather + 1)
    kernel = np.exp(-0.5 * (taps / (feather / 2.0)) ** 2)
    return np.convolve(box, kernel / kernel.sum(), mode="same")


def _layer(translated, crop_size, feather):
    """float32 (218, 178, 4): the translated face upsampled onto its crop in the aligned frame, and the mask."""
    top, left, size = crop_box(crop_size)
    layer = np.zeros((ALIGNED_HEIGHT, ALIGNED_WIDTH, 4), np.float32)
    if translated is not None:
        face = tf.image.resize(tf.cast(translated, tf.float32), [size, size], method="bilinear")
        layer[top : top + size, left : left + size, :3] = face.numpy()
    profile = _feather(size, feather)
    layer[top : top + size, left : left + size, 3] = np.outer(profile, profile)
    return layer


def _paste(shape, face, translated, crop_size, feather):
    """((y0, x0), warped (h, w, 4)): the layer warped onto the photo's region around the face, or None outside."""
    height, width = shape[:2]
    top, left, size = crop_box(crop_size)
    to_aligned = face.matrix
    x0, y0, x1, y1 = _bounds(np.linalg.inv(to_aligned), left - 0.5, top - 0.5, left + size - 0.5, top + size - 0.5,
                             width, height, 1)
    if x1 <= x0 or y1 <= y0:
        return None
    warped = warp(_layer(translated, crop_size, feather), to_aligned @ shift(x0, y0), y1 - y0, x1 - x0)
    return (y0, x0), warped.numpy()


def paste_mask(shape, face, crop_size=DEFAULT_CROP_SIZE, feather=FEATHER):
    """float32 (H, W) in [0, 1]: how much of the translated face replaces each photo pixel (0: kept as it was)."""
    mask = np.zeros(shape[:2], np.float32)
    pasted = _paste(shape, face, None, crop_size, feather)
    if pasted is not None:
        (y0, x0), warped = pasted
        mask[y0 : y0 + warped.shape[0], x0 : x0 + warped.shape[1]] = warped[..., 3]
    return mask


def paste_back(pixels, faces, translated, crop_size=DEFAULT_CROP_SIZE, feather=FEATHER):
    """`pixels` (uint8 (H, W, 3)) with each face's translated crop (uint8 (s, s, 3), the crop's content at any size)
    warped back and blended by its feathered mask; pixels where every mask is 0 keep their bytes."""
    out = np.array(pixels, dtype=np.uint8, copy=True)
    for face, image in zip(faces, translated, strict=True):
        pasted = _paste(out.shape, face, np.asarray(image), crop_size, feather)
        if pasted is None:
            continue
        (y0, x0), warped = pasted
        region = out[y0 : y0 + warped.shape[0], x0 : x0 + warped.shape[1]]
        mask = warped[..., 3:]
        blended = np.clip(np.rint(region + mask * (warped[..., :3] - region)), 0, 255).astype(np.uint8)
        region[...] = np.where(mask > 0, blended, region)
    return out


def translate_photo(pixels, faces, translate_crops, crop_size=DEFAULT_CROP_SIZE, feather=FEATHER):
    """`pixels` with every face translated: `translate_crops` maps the training crops, uint8 (N, c, c, 3), to the
    model's outputs, uint8 (N, s, s, 3)."""
    if not faces:
        return np.array(pixels, copy=True)
    return paste_back(pixels, faces, translate_crops(training_crops(pixels, faces, crop_size)), crop_size, feather)


def training_crops(pixels, faces, crop_size=DEFAULT_CROP_SIZE):
    """uint8 (N, c, c, 3): each face of `pixels` aligned like CelebA and cut to the model's training crop."""
    return np.stack([training_crop(align(pixels, face), crop_size) for face in faces])


def decode_photo(payload, max_pixels=preprocessing.MAX_PIXELS):
    """JPEG/PNG/GIF/BMP bytes -> uint8 RGB (H, W, 3) as shown (EXIF orientation applied, read and turned by
    preprocessing as translate_bytes does), after the pixel budget."""
    return preprocessing.decode_shown(tf.constant(payload), None, max_pixels=max_pixels).numpy()


def extra_installed():
    """Whether the faces extra (mtcnn, lz4, joblib) is installed, without importing mtcnn."""
    return all(importlib.util.find_spec(name) is not None for name in ("mtcnn", "lz4", "joblib"))


@functools.cache
def load_detector():
    """mtcnn's MTCNN with the weights inside its wheel (by absolute path: mtcnn would first try a same-named file in
    the working directory); a clear FacesExtraMissing when mtcnn or lz4 is not installed."""
    try:
        from mtcnn import MTCNN
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        weights = importlib.resources.files("mtcnn.assets.weights")
        return MTCNN(stages=[StagePNet(weights=str(weights / "pnet.lz4")), StageRNet(weights=str(weights / "rnet.lz4")),
                             StageONet(weights=str(weights / "onet.lz4"))])
    except ImportError as e:
        raise FacesExtraMissing(f"face alignment needs mtcnn and lz4 ({e}); install the faces extra: "
                                f"{INSTALL_HINT}") from None


def detect_faces(pixels, min_confidence=MIN_CONFIDENCE, detector=None, max_side=DETECT_SIDE):
    """Faces in uint8 RGB `pixels` with mtcnn confidence >= `min_confidence`, left to right. A photo larger than
    `max_side` is searched at that size (antialiased) and the landmarks are scaled back."""
    if not 0.0 < min_confidence <= 1.0:
        raise ValueError(f"the face confidence threshold must lie in (0, 1], got {min_confidence:g}")
    detector = detector or load_detector()
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small = pixels
    if factor < 1.0:
        size = [max(1, round(height * factor)), max(1, round(width * factor))]
        resized = tf.image.resize(pixels, size, method="bilinear", antialias=True)
        small = np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)
    scale = np.array([width / small.shape[1], height / small.shape[0]])
    found = []
    for item in detector.detect_faces(small):
        if float(item["confidence"]) < min_confidence:
            continue
        points = np.array([item["keypoints"][k] for k in KEYPOINTS], np.float64)
        x, y, w, h = (float(v) for v in item["box"])
        box = (x * scale[0], y * scale[1], w * scale[0], h * scale[1])
        found.append(Face((points + 0.5) * scale - 0.5, float(item["confidence"]), box))
    return sorted(found, key=lambda face: face.landmarks[:, 0].mean())
