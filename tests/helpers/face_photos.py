"""Photos with faces for the face tests, and mtcnn's own Python package as the reference stargan_tf.face_graph's
detector is checked against (only a test reference: the product runs face_graph alone).

  collage(skdata.astronaut())  # 1800 x 1000, 3 faces, searched shrunk (above faces.DETECT_SIDE)
  mtcnn_faces(pixels)          # [MtcnnFace] above faces.MIN_CONFIDENCE, left to right, in `pixels`' pixels
"""

import dataclasses
import functools
import importlib.resources

import numpy as np
import tensorflow as tf

from stargan_tf import faces


def shrink(pixels, side):
    """uint8 `pixels` resized (antialiased, rounded) to side x side."""
    return tf.cast(tf.round(tf.image.resize(pixels, [side, side], antialias=True)), tf.uint8).numpy()


def collage(astronaut):
    """1800 x 1000 (above faces.DETECT_SIDE, so it is searched shrunk): the astronaut at 512, 256 and mirrored at
    384 px on a flat grey canvas."""
    canvas = np.full((1000, 1800, 3), 96, np.uint8)
    canvas[40:552, 60:572] = astronaut
    canvas[500:756, 700:956] = shrink(astronaut, 256)
    canvas[300:684, 1300:1684] = shrink(astronaut[:, ::-1], 384)
    return canvas


@dataclasses.dataclass(frozen=True, eq=False)
class MtcnnFace:
    """One face as mtcnn reports it, scaled back to the photo: landmarks (5, 2) (x, y) in faces.KEYPOINTS order,
    confidence, box (x, y, width, height)."""

    landmarks: np.ndarray
    confidence: float
    box: tuple


@functools.cache
def mtcnn_detector():
    """mtcnn.MTCNN with the weights inside its wheel, by absolute path (mtcnn would first try a same-named file in
    the working directory)."""
    from mtcnn import MTCNN
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    weights = importlib.resources.files("mtcnn.assets.weights")
    return MTCNN(stages=[StagePNet(weights=str(weights / "pnet.lz4")), StageRNet(weights=str(weights / "rnet.lz4")),
                         StageONet(weights=str(weights / "onet.lz4"))])


def mtcnn_faces(pixels, min_confidence=faces.MIN_CONFIDENCE, max_side=faces.DETECT_SIDE):
    """[MtcnnFace] of MTCNN().detect_faces on uint8 RGB `pixels` with confidence >= `min_confidence`, left to right
    by mean landmark x. A photo larger than `max_side` is searched at that size (tf.image.resize antialiased, rounded
    to uint8) and the results scaled back, landmarks by their pixel centres."""
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
    for item in mtcnn_detector().detect_faces(small):
        if float(item["confidence"]) < min_confidence:
            continue
        points = np.array([item["keypoints"][k] for k in faces.KEYPOINTS], np.float64)
        x, y, w, h = (float(v) for v in item["box"])
        found.append(MtcnnFace((points + 0.5) * scale - 0.5, float(item["confidence"]),
                               (x * scale[0], y * scale[1], w * scale[0], h * scale[1])))
    return sorted(found, key=lambda face: face.landmarks[:, 0].mean())
