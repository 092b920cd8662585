"""MTCNN, the similarity fit, the alignment and the paste-back as TF ops (stargan_tf.face_graph), against mtcnn's own
Python package, a numpy Umeyama fit and a numpy bilinear sampling written here."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from stargan_tf import face_graph, faces
from tests.helpers.face_photos import collage as make_collage
from tests.helpers.face_photos import mtcnn_faces, shrink

ASTRONAUT_LANDMARKS = np.array([[204, 100], [245, 102], [224, 126], [202, 139], [244, 140]], np.float64)  # mtcnn's
GREEN = np.array([0, 255, 0], np.uint8)


def green_tf(crops):
    """A stand-in model as TF ops: every crop becomes a 32 x 32 green square."""
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
    return make_collage(astronaut)


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mtcnn")
    return face_graph.load_detector()


def differences(found, reference):
    """(max box difference, max landmark difference) in pixels between detect's output and mtcnn's (MtcnnFace)."""
    boxes, points = found["boxes"].numpy(), found["landmarks"].numpy()
    box = max(np.abs(boxes[i] - np.array(face.box)).max() for i, face in enumerate(reference))
    landmark = max(np.abs(points[i] - face.landmarks).max() for i, face in enumerate(reference))
    return box, landmark


@pytest.mark.parametrize("photo", ["astronaut", "collage"])
def test_detection_matches_mtcnns_own_package_within_2_px_boxes_and_1_5_px_landmarks(detector, photo, request):
    """Measured: astronaut 0.40 px (boxes), 0.46 px (landmarks); collage 0.50 and 0.56 px. mtcnn rounds both to
    whole pixels of the photo it searched (the collage's is shrunk 1.125 times)."""
    pytest.importorskip("mtcnn")
    pixels = request.getfixturevalue(photo)
    found = detector.detect(pixels)
    reference = mtcnn_faces(pixels)
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
        matrices = face_graph.face_matrices(found["landmarks"][: found["num_faces"]])
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
    outside = face_graph.paste_mask(astronaut.shape, face_graph.face_matrices(out["landmarks"][:1])) == 0
    assert (int(out["num_faces"]), out["landmarks"].shape) == (1, (4, 5, 2))
    np.testing.assert_allclose(out["landmarks"], direct["landmarks"].numpy(), atol=1e-3)
    assert (np.array_equal(out["image"][outside], astronaut[outside]), (out["image"][~outside] == GREEN).all(-1).any()
            ) == (True, True)


def rotation(angle, scale, dx, dy):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def umeyama(src, dst):
    """The reference fit: Umeyama (1991) by SVD of the points' covariance, no reflection; 3 x 3 float64."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    scale = np.trace(np.diag(sigma) @ flip) / (s**2).sum(axis=1).mean()
    matrix = np.eye(3)
    matrix[:2, :2] = scale * u @ flip @ vt
    matrix[:2, 2] = dst_mean - matrix[:2, :2] @ src_mean
    return matrix


def test_similarity_transform_equals_the_numpy_umeyama_fit_on_a_batch():
    rng = np.random.default_rng(0)
    sets = [faces.TEMPLATE @ rotation(a, s, 0, 0)[:2, :2].T + rng.normal(0, 4, (5, 2)) + rng.uniform(0, 3000, 2)
            for a, s in zip(rng.uniform(-3, 3, 16), rng.uniform(0.05, 12, 16), strict=True)]
    sets.append(faces.TEMPLATE * [-1.0, 1.0])  # mirrored: the fit must not reflect
    got = face_graph.similarity_transform(np.stack(sets), faces.TEMPLATE).numpy()
    expected = np.stack([umeyama(s, faces.TEMPLATE) for s in sets])
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.all(np.linalg.det(got[:, :2, :2]) >= 0)


def test_face_matrices_of_detected_landmarks_are_the_umeyama_fit_onto_the_template(detector, astronaut):
    found = detector.detect(astronaut)
    got = face_graph.face_matrices(found["landmarks"]).numpy()
    expected = umeyama(found["landmarks"].numpy()[0].astype(np.float64), faces.TEMPLATE)
    assert (got.shape, got.dtype) == ((face_graph.MAX_FACES, 3, 3), np.float64)
    np.testing.assert_allclose(got[0], expected, atol=1e-4, rtol=0)
    assert np.all(got[1:, :2, :2] == 0)  # padding: no transform, no NaN


def photo_with_faces(name, astronaut):
    """(photo, landmarks (N, 5, 2)): the astronaut; two side by side; twice the size, so alignment first shrinks it."""
    if name == "twins":
        return np.concatenate([astronaut, astronaut], 1), np.stack([ASTRONAUT_LANDMARKS + [dx, 0] for dx in (0, 512)])
    if name == "astronaut x2":
        return shrink(astronaut, 1024), ((ASTRONAUT_LANDMARKS + 0.5) * 2 - 0.5)[None]
    return astronaut, ASTRONAUT_LANDMARKS[None]


@pytest.fixture(scope="module", params=["astronaut", "twins", "astronaut x2"])
def photo_faces(request, astronaut):
    return photo_with_faces(request.param, astronaut)


def bilinear_crops(pixels, landmarks, crop_size):
    """The reference training crops, float64 (N, c, c, 3): crop pixel (x, y) of the aligned frame (the crop centred
    in 178 x 218) is the photo sampled bilinearly at the inverse Umeyama fit of (x, y), in numpy."""
    top, left = (218 - crop_size) // 2, (178 - crop_size) // 2
    ys, xs = np.mgrid[top : top + crop_size, left : left + crop_size].astype(np.float64)
    crops = []
    for points in landmarks:
        to_photo = np.linalg.inv(umeyama(points, faces.TEMPLATE))
        px = to_photo[0, 0] * xs + to_photo[0, 1] * ys + to_photo[0, 2]
        py = to_photo[1, 0] * xs + to_photo[1, 1] * ys + to_photo[1, 2]
        x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
        fx, fy = (px - x0)[..., None], (py - y0)[..., None]
        at = lambda y, x: pixels[y, x].astype(np.float64)  # noqa: E731
        crops.append((at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy)
                     + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy)
    return np.stack(crops)


@pytest.mark.parametrize("name", ["astronaut", "twins"])
def test_training_crops_are_the_photo_sampled_bilinearly_at_the_fitted_transform(astronaut, name):
    """The warp, the fit and the crop's place against numpy, where the face is about the frame's scale: every byte
    within one level (float32 rounding), 99% equal."""
    pixels, landmarks = photo_with_faces(name, astronaut)
    crops = face_graph.training_crops(pixels, face_graph.face_matrices(landmarks), 128).numpy()
    difference = np.abs(crops - np.rint(bilinear_crops(pixels, landmarks, 128)))
    assert (crops.shape, crops.dtype) == ((len(landmarks), 128, 128, 3), np.uint8)
    assert (difference.max(), (difference == 0).mean() > 0.99) == (1, True), difference.max()


def test_a_face_twice_the_frames_scale_is_shrunk_antialiased_before_the_warp(astronaut):
    """The reference shrinks the whole photo (antialiased) to the aligned frame's scale, then samples it bilinearly:
    mean difference measured at 0.40 levels (the product shrinks only the face's region, to a rounded size); sampled
    without the shrink it would be 2.0 (aliased), the original photo's crop 2.6."""
    pixels, landmarks = photo_with_faces("astronaut x2", astronaut)
    matrices = face_graph.face_matrices(landmarks)
    scale = 1 / np.sqrt(np.linalg.det(matrices.numpy()[0, :2, :2]))  # photo pixels per aligned pixel
    side = round(1024 / scale)
    small = tf.image.resize(pixels, [side, side], antialias=True).numpy()
    reference = bilinear_crops(small, (landmarks + 0.5) * side / 1024 - 0.5, 128)
    crops = face_graph.training_crops(pixels, matrices, 128).numpy()
    assert (scale > faces.SHRINK_ABOVE, np.abs(crops - reference).mean() < 1.0) == (True, True)


def test_translated_photo_is_blended_by_the_paste_mask_and_keeps_every_byte_outside_it(photo_faces):
    """Where paste_mask is 0 the input's bytes, where it is 1 the translated face's (green), in between their blend
    by the mask (to rounding)."""
    pixels, landmarks = photo_faces
    matrices = face_graph.face_matrices(landmarks)
    out = graph_translate(pixels, matrices).numpy()
    mask = face_graph.paste_mask(pixels.shape, matrices)
    outside, inside, between = mask == 0, mask == 1, (mask > 0) & (mask < 1)
    blend = pixels + mask[..., None] * (GREEN.astype(np.float64) - pixels)
    assert (out.shape, inside.sum() > 10_000 * len(landmarks), between.sum() > 1000) == (pixels.shape, True, True)
    np.testing.assert_array_equal(out[outside], pixels[outside])
    np.testing.assert_array_equal(out[inside], np.broadcast_to(GREEN, (inside.sum(), 3)))
    assert np.abs(out[between] - blend[between]).max() <= 0.5 + 1e-3


def test_a_photo_without_faces_comes_back_unchanged(astronaut):
    out = graph_translate(astronaut, np.zeros((0, 3, 3)))
    np.testing.assert_array_equal(out.numpy(), astronaut)
