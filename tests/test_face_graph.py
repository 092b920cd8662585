"""MTCNN and the similarity fit as TF ops (stargan_tf.face_graph) against the eager path (stargan_tf.faces)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from stargan_tf import face_graph, faces


def shrink(pixels, side):
    return tf.cast(tf.round(tf.image.resize(pixels, [side, side], antialias=True)), tf.uint8).numpy()


ASTRONAUT_LANDMARKS = np.array([[204, 100], [245, 102], [224, 126], [202, 139], [244, 140]], np.float64)  # mtcnn's
GREEN = np.array([0, 255, 0], np.uint8)


def green(crops):
    """A stand-in model: every crop becomes a 32 x 32 green square."""
    return np.broadcast_to(GREEN, (len(crops), 32, 32, 3))


def green_tf(crops):
    """green as TF ops."""
    return tf.broadcast_to(GREEN, tf.stack([tf.shape(crops)[0], 32, 32, 3]))


@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, 3, 3], tf.float64)],
             autograph=False)
def graph_translate(pixels, matrices):
    """face_graph.translate_photo traced once for any photo size and face count, as a serving signature runs it."""
    return face_graph.translate_photo(pixels, matrices, green_tf)


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def collage(astronaut):
    """1800 x 1000 (above faces.DETECT_SIDE, so it is searched shrunk): the astronaut at 512, 256 and mirrored at
    384 px on a flat grey canvas."""
    canvas = np.full((1000, 1800, 3), 96, np.uint8)
    canvas[40:552, 60:572] = astronaut
    canvas[500:756, 700:956] = shrink(astronaut, 256)
    canvas[300:684, 1300:1684] = shrink(astronaut[:, ::-1], 384)
    return canvas


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mtcnn")
    return face_graph.FaceDetector.from_mtcnn()


def differences(found, reference):
    """(max box difference, max landmark difference) in pixels between detect's output and faces.Face objects."""
    boxes, points = found["boxes"].numpy(), found["landmarks"].numpy()
    box = max(np.abs(boxes[i] - np.array(face.box)).max() for i, face in enumerate(reference))
    landmark = max(np.abs(points[i] - face.landmarks).max() for i, face in enumerate(reference))
    return box, landmark


@pytest.mark.parametrize("photo", ["astronaut", "collage"])
def test_detection_matches_eager_mtcnn_within_2_px_boxes_and_1_5_px_landmarks(detector, photo, request):
    """Measured: astronaut 0.40 px (boxes), 0.46 px (landmarks); collage 0.50 and 0.56 px. mtcnn rounds both to
    whole pixels of the photo it searched (the collage's is shrunk 1.125 times)."""
    pytest.importorskip("mtcnn")
    pixels = request.getfixturevalue(photo)
    found = detector.detect(pixels)
    reference = faces.detect_faces(pixels)
    box, landmark = differences(found, reference)
    assert (int(found["num_faces"]), int(found["num_found"])) == (len(reference), len(reference))
    assert (box < 2.0, landmark < 1.5) == (True, True), (box, landmark)
    np.testing.assert_allclose(found["scores"].numpy()[: len(reference)], [f.confidence for f in reference],
                               atol=1e-4)


def test_collage_faces_come_left_to_right_with_their_sizes(detector, collage):
    found = detector.detect(collage)
    boxes = found["boxes"].numpy()
    assert int(found["num_faces"]) == 3
    assert np.all(np.diff(boxes[:3, 0]) > 0)
    np.testing.assert_allclose(boxes[1, 2] / boxes[0, 2], 0.5, atol=0.05)  # the half-size astronaut's face


def test_faces_beyond_max_faces_are_dropped_counted_and_padded_with_zeros(detector, collage):
    found = detector.detect(collage, max_faces=2)
    shapes = {k: tuple(v.shape) for k, v in found.items()}
    assert shapes == {"boxes": (2, 4), "scores": (2,), "landmarks": (2, 5, 2), "num_faces": (), "num_found": ()}
    assert (int(found["num_faces"]), int(found["num_found"])) == (2, 3)
    assert found["scores"].numpy().min() > 0.99  # the two best of 0.99996, 0.9987, 0.9970
    padded = detector.detect(collage, max_faces=5)
    assert (padded["scores"].numpy()[3:] == 0).all() and (padded["landmarks"].numpy()[3:] == 0).all()


@pytest.mark.parametrize("pixels", [np.full((300, 400, 3), 200, np.uint8), skdata.coffee(), np.zeros((10, 10, 3),
                                                                                                      np.uint8)])
def test_no_face_in_a_flat_colour_a_coffee_cup_or_a_tiny_image(detector, pixels):
    found = detector.detect(pixels)
    assert (int(found["num_faces"]), found["boxes"].shape[0]) == (0, face_graph.MAX_FACES)


def test_a_saved_model_edits_the_photo_in_a_process_without_mtcnn(detector, astronaut, tmp_path):
    """Detection, fit, alignment and paste-back in one signature (a green square for the model): its weights are
    variables of the module, so the export runs with TensorFlow alone."""
    module = tf.Module()
    module.detector = detector

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)], autograph=False)
    def edit(image):
        found = detector.detect(image, max_faces=4)
        matrices = face_graph.similarity_transform(found["landmarks"][: found["num_faces"]], faces.TEMPLATE)
        return {"image": face_graph.translate_photo(image, matrices, green_tf), "landmarks": found["landmarks"],
                "num_faces": found["num_faces"]}

    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"edit": edit})
    np.save(tmp_path / "photo.npy", astronaut)
    script = ("import sys; sys.modules['mtcnn'] = sys.modules['stargan_tf'] = None\n"
              "import numpy as np, tensorflow as tf\n"
              f"out = tf.saved_model.load({str(tmp_path / 'model')!r}).signatures['edit']("
              f"image=tf.constant(np.load({str(tmp_path / 'photo.npy')!r})))\n"
              f"np.savez({str(tmp_path / 'out.npz')!r}, **{{k: v.numpy() for k, v in out.items()}})\n")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    out = np.load(tmp_path / "out.npz")
    direct = detector.detect(astronaut, max_faces=4)
    outside = faces.paste_mask(astronaut.shape, faces.Face(out["landmarks"][0].astype(np.float64))) == 0
    assert (int(out["num_faces"]), out["landmarks"].shape) == (1, (4, 5, 2))
    np.testing.assert_allclose(out["landmarks"], direct["landmarks"].numpy(), atol=1e-3)
    assert (np.array_equal(out["image"][outside], astronaut[outside]), (out["image"][~outside] == GREEN).all(-1).any()
            ) == (True, True)


def rotation(angle, scale, dx, dy):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def test_similarity_transform_equals_the_numpy_umeyama_fit_on_a_batch():
    rng = np.random.default_rng(0)
    sets = [faces.TEMPLATE @ rotation(a, s, 0, 0)[:2, :2].T + rng.normal(0, 4, (5, 2)) + rng.uniform(0, 3000, 2)
            for a, s in zip(rng.uniform(-3, 3, 16), rng.uniform(0.05, 12, 16), strict=True)]
    sets.append(faces.TEMPLATE * [-1.0, 1.0])  # mirrored: the fit must not reflect
    got = face_graph.similarity_transform(np.stack(sets), faces.TEMPLATE).numpy()
    expected = np.stack([faces.similarity_transform(s, faces.TEMPLATE) for s in sets])
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.all(np.linalg.det(got[:, :2, :2]) >= 0)


def test_similarity_transform_of_detected_landmarks_matches_the_face_matrix(detector, astronaut):
    found = detector.detect(astronaut)
    got = face_graph.similarity_transform(found["landmarks"], faces.TEMPLATE).numpy()
    expected = faces.Face(found["landmarks"].numpy()[0].astype(np.float64)).matrix
    np.testing.assert_allclose(got[0], expected, atol=1e-4, rtol=0)
    assert np.all(got[1:, :2, :2] == 0)  # padding: no transform, no NaN


@pytest.fixture(scope="module", params=["astronaut", "twins", "astronaut x2"])
def photo_faces(request, astronaut):
    """(photo, [faces.Face]): the astronaut; two side by side; twice the size, so alignment first shrinks it."""
    if request.param == "twins":
        return np.concatenate([astronaut, astronaut], 1), [faces.Face(ASTRONAUT_LANDMARKS + [dx, 0]) for dx in
                                                           (0, 512)]
    if request.param == "astronaut x2":
        return shrink(astronaut, 1024), [faces.Face((ASTRONAUT_LANDMARKS + 0.5) * 2 - 0.5)]
    return astronaut, [faces.Face(ASTRONAUT_LANDMARKS)]


def test_training_crops_equal_the_eager_ones_byte_for_byte(photo_faces):
    pixels, found = photo_faces
    matrices = face_graph.similarity_transform(np.stack([f.landmarks for f in found]), faces.TEMPLATE)
    crops = face_graph.training_crops(pixels, matrices, 128).numpy()
    np.testing.assert_array_equal(crops, faces.training_crops(pixels, found, 128))


def test_translated_photo_equals_the_eager_one_and_keeps_every_byte_outside_the_masks(photo_faces):
    pixels, found = photo_faces
    out = graph_translate(pixels, np.stack([f.matrix for f in found])).numpy()
    outside = np.all([faces.paste_mask(pixels.shape, f) == 0 for f in found], axis=0)
    np.testing.assert_array_equal(out, faces.translate_photo(pixels, found, green))
    assert (np.array_equal(out[outside], pixels[outside]), (out[~outside] == GREEN).all(-1).mean() > 0.5) == (
        True, True)


def test_a_photo_without_faces_comes_back_unchanged(astronaut):
    out = graph_translate(astronaut, np.zeros((0, 3, 3)))
    np.testing.assert_array_equal(out.numpy(), astronaut)
