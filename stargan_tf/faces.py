"""CelebA's face alignment as numbers: the 5-point template of its 178 x 218 aligned frame, the training crop inside
it, the feathered paste-back mask's profile and the detection settings; face_graph.py does the work with them as
TensorFlow ops (detection, the similarity fit, the warps, the blend), for the export's edit_photo graph, the
translate command and the app alike.

  pixels = decode_photo(payload)   # uint8 RGB, upright by its EXIF orientation, as every path decodes a photo
  top, left, size = crop_box(178)  # the model's training crop in the aligned frame
"""

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


def crop_box(crop_size=DEFAULT_CROP_SIZE):
    """(top, left, size) of the training crop in the aligned frame: preprocessing.center_crop's square."""
    size = min(ALIGNED_WIDTH, ALIGNED_HEIGHT, int(crop_size))
    return round((ALIGNED_HEIGHT - size) / 2), round((ALIGNED_WIDTH - size) / 2), size


def feather_profile(size, feather=FEATHER):
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


def decode_photo(payload, max_pixels=preprocessing.MAX_PIXELS):
    """JPEG/PNG/GIF/BMP bytes -> uint8 RGB (H, W, 3) as shown (EXIF orientation applied, read and turned by
    preprocessing as translate_bytes does), after the pixel budget."""
    return preprocessing.decode_shown(tf.constant(payload), None, max_pixels=max_pixels).numpy()


def extra_installed():
    """Whether the faces extra (mtcnn, lz4, joblib) is installed, without importing mtcnn."""
    return all(importlib.util.find_spec(name) is not None for name in ("mtcnn", "lz4", "joblib"))
