"""Faces aligned like CelebA and pasted back, fractional labels and strips: on scikit-image's astronaut photo."""

import functools
import io
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from skimage import data as skdata

from stargan_tf import domains, face_graph, faces, preprocessing, serving, translate
from stargan_tf.export import build_server
from stargan_tf.translator import Translator
from tests.helpers.configs import tiny_config
from tests.helpers.grids import split_header
from tests.helpers.images import jpeg_with_exif_after

GREEN = np.array([0, 255, 0], np.uint8)


@pytest.fixture(scope="module")
def astronaut():
    """NASA's 512 x 512 portrait of Eileen Collins, shipped inside scikit-image."""
    return skdata.astronaut()


@pytest.fixture(scope="module")
def detector():
    return face_graph.load_detector()


def find(detector, pixels):
    """Every face face_graph's detector keeps (confidence >= 0.95), left to right: {boxes, scores, landmarks} numpy."""
    found = detector.detect(pixels, max_faces=None)
    return {k: found[k].numpy() for k in ("boxes", "scores", "landmarks")}


@pytest.fixture(scope="module")
def face(detector, astronaut):
    """The astronaut's one face: {"box" (4,), "score", "landmarks" (5, 2), "matrices" (1, 3, 3) into the frame}."""
    found = find(detector, astronaut)
    assert len(found["landmarks"]) == 1
    return {"box": found["boxes"][0], "score": found["scores"][0], "landmarks": found["landmarks"][0],
            "matrices": face_graph.face_matrices(found["landmarks"]).numpy()}


def green(crops):
    """A stand-in model as TF ops: every crop becomes a 32 x 32 green square."""
    return tf.broadcast_to(GREEN, tf.stack([tf.shape(crops)[0], 32, 32, 3]))


def apply(matrix, points):
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def test_similarity_transform_recovers_a_known_rotation_scale_and_shift():
    angle, scale, offset = 0.3, 1.7, np.array([12.5, -40.25])
    expected = np.eye(3)
    expected[:2, :2] = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    expected[:2, 2] = offset
    np.testing.assert_allclose(face_graph.similarity_transform(faces.TEMPLATE, apply(expected, faces.TEMPLATE)),
                               expected, atol=1e-6)


def test_astronaut_face_is_found_with_its_landmarks_inside_its_box(face):
    x, y, w, h = face["box"]
    points = face["landmarks"]
    inside = (points[:, 0] > x) & (points[:, 0] < x + w) & (points[:, 1] > y) & (points[:, 1] < y + h)
    assert (face["score"] >= faces.MIN_CONFIDENCE, inside.tolist()) == (True, [True] * 5)


@pytest.fixture(scope="module")
def realigned(detector, astronaut, face):
    """The faces the detector finds again in the astronaut's aligned face."""
    return find(detector, face_graph.align(astronaut, face["matrices"][0]).numpy())["landmarks"]


def test_aligned_astronaut_landmarks_lie_within_6_pixels_of_the_template(realigned):
    """Measured: 2.1, 3.6, 2.4, 5.2, 4.4 px (mean 3.5); the similarity fit itself leaves up to 4.7 px (her smile is
    wider than CelebA's mean mouth)."""
    assert len(realigned) == 1
    assert np.linalg.norm(realigned[0] - faces.TEMPLATE, axis=1).max() <= 6.0


def test_aligned_landmarks_lie_within_3_pixels_of_where_the_transform_sends_them(realigned, face):
    """The warp's own accuracy, without the fit's residual: measured 0.2, 1.4, 1.1, 0.5, 0.8 px."""
    assert np.linalg.norm(realigned[0] - apply(face["matrices"][0], face["landmarks"]), axis=1).max() <= 3.0


def test_aligned_face_has_celeba_size(astronaut, face):
    aligned = face_graph.align(astronaut, face["matrices"][0]).numpy()
    assert (aligned.shape, aligned.dtype) == ((218, 178, 3), np.uint8)


def test_a_photo_8_times_larger_aligns_like_the_original(astronaut, face):
    """Antialiased before the warp: mean difference 1.6 levels (2.6 when warped directly, aliased)."""
    big = np.repeat(np.repeat(astronaut, 8, axis=0), 8, axis=1)
    large = face_graph.face_matrices(((face["landmarks"] + 0.5) * 8 - 0.5)[None])[0]
    difference = np.abs(face_graph.align(big, large).numpy().astype(np.float32)
                        - face_graph.align(astronaut, face["matrices"][0]).numpy())
    assert difference.mean() < 2.0


@pytest.mark.parametrize("crop_size", [178, 150, 256])
def test_crop_box_is_data_center_crop(crop_size):
    frame = np.arange(218 * 178 * 3, dtype=np.int32).reshape(218, 178, 3)
    top, left, size = faces.crop_box(crop_size)
    np.testing.assert_array_equal(frame[top : top + size, left : left + size],
                                  preprocessing.center_crop(tf.constant(frame), crop_size).numpy())


@pytest.fixture(scope="module")
def greened(astronaut, face):
    """The astronaut with her face translated by `green` and pasted back."""
    return face_graph.translate_photo(astronaut, face["matrices"], green).numpy()


def test_paste_back_keeps_the_photo_size(greened):
    assert (greened.shape, greened.dtype) == ((512, 512, 3), np.uint8)


def test_paste_back_keeps_every_pixel_outside_the_mask_byte_identical(astronaut, face, greened):
    outside = face_graph.paste_mask(astronaut.shape, face["matrices"]) == 0
    np.testing.assert_array_equal(greened[outside], astronaut[outside])


def test_paste_mask_covers_at_most_the_crop_square_and_fully_the_face(astronaut, face):
    """The 178-pixel crop square is 178 / 0.947 = 188 photo pixels wide: at most 35,300 pixels can be touched
    (measured 34,901)."""
    mask = face_graph.paste_mask(astronaut.shape, face["matrices"])
    nose_x, nose_y = np.rint(face["landmarks"][2]).astype(int)
    assert ((mask > 0).sum() < 188**2, mask[nose_y, nose_x]) == (True, 1.0)


def test_paste_back_replaces_the_pixels_inside_the_mask(astronaut, face, greened):
    inside = face_graph.paste_mask(astronaut.shape, face["matrices"]) == 1
    assert inside.sum() > 10_000
    np.testing.assert_array_equal(greened[inside], np.broadcast_to(GREEN, (inside.sum(), 3)))


@pytest.fixture(scope="module")
def twins(astronaut):
    return np.concatenate([astronaut, astronaut], axis=1)


def test_two_faces_side_by_side_are_found_left_to_right(detector, twins):
    noses = find(detector, twins)["landmarks"][:, 2, 0]
    assert len(noses) == 2 and abs(noses[1] - noses[0] - 512) <= 3


def test_two_faces_side_by_side_are_both_pasted(detector, twins):
    landmarks = find(detector, twins)["landmarks"]
    out = face_graph.translate_photo(twins, face_graph.face_matrices(landmarks), green).numpy()
    noses = [tuple(np.rint(points[2]).astype(int)) for points in landmarks]
    assert (len(noses), [out[y, x].tolist() for x, y in noses]) == (2, [GREEN.tolist()] * 2)


@pytest.mark.parametrize("photo", ["flat", "coffee"])
def test_no_face_is_found_in_a_flat_colour_or_a_coffee_cup(detector, photo):
    """max_faces None: every face found, unpadded, so none is an empty batch."""
    pixels = np.full((300, 400, 3), 128, np.uint8) if photo == "flat" else skdata.coffee()
    assert {k: v.shape for k, v in find(detector, pixels).items()} == {"boxes": (0, 4), "scores": (0,),
                                                                       "landmarks": (0, 5, 2)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_like_pil_exif_transpose(orientation):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    np.testing.assert_array_equal(faces.decode_photo(buffer.getvalue()), expected)


def test_decode_photo_reads_the_orientation_as_translate_bytes_does():
    """One EXIF reader for every path a photo enters (preprocessing's, in the graph): an Exif segment past the
    bounded prefix it reads is ignored by the app and --align_faces as by translate_bytes, though PIL reads it."""
    from stargan_tf import preprocessing

    payload = jpeg_with_exif_after(256 * 1024)
    assert Image.open(io.BytesIO(payload)).getexif().get(0x0112) == 6
    assert int(preprocessing.exif_orientation(tf.constant(payload))) == 1
    assert faces.decode_photo(payload).shape == (4, 6, 3)  # as stored, not turned
    assert not hasattr(faces, "_UPRIGHT")


@pytest.fixture
def without_mtcnn(monkeypatch):
    """mtcnn cannot be imported (importlib.util.find_spec finds None), and face_graph.load_detector has an empty cache
    of its own, so it looks again; the process's cached detector is back afterwards."""
    monkeypatch.setitem(sys.modules, "mtcnn", None)
    monkeypatch.setattr(face_graph, "load_detector", functools.cache(face_graph.load_detector.__wrapped__))


def test_missing_mtcnn_names_the_faces_extra(without_mtcnn):
    with pytest.raises(faces.FacesExtraMissing, match=r'faces extra: pip install -e "\.\[faces\]" in the clone$'):
        face_graph.load_detector()


def test_fractional_set_on_a_hair_colour_moves_the_rest_of_the_group():
    spec = domains.attribute_spec(["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"])
    label = domains.set_attribute(spec, np.array([[1, 0, 0, 1, 0]], np.float32), 1, 0.6)
    np.testing.assert_array_equal(label, np.array([[0.4, 0.6, 0, 1, 0]], np.float32))


# With the tiny export (32 x 32, Black_Hair, Blond_Hair, Brown_Hair, Male, Young; noise as output).


@pytest.fixture(scope="module")
def translator(exported):  # noqa: F811
    return Translator.from_export(exported[1])


def test_fractional_set_reaches_the_label_as_given(translator):
    rows = translate.label_rows(translator, [("Black_Hair", 1.0), ("Young", 1.0)], [("Blond_Hair", 0.6)])
    np.testing.assert_array_equal(rows, np.array([[0.4, 0.6, 0, 0, 1]], np.float32))


def test_strip_labels_hold_the_attribute_at_five_values(translator):
    rows = translate.label_rows(translator, [("Male", 1.0)], [("Blond_Hair", 1.0)], strip="Male")
    np.testing.assert_array_equal(rows, [[0, 1, 0, v, 0] for v in translate.STRIP_VALUES])


def test_export_reports_its_crop_size(translator):
    assert translator.crop_size == 178


def test_export_without_crop_size_falls_back_to_178(exported, tmp_path):  # noqa: F811
    class OldServer(serving.GeneratorServer):
        def _metadata(self):
            return {k: v for k, v in super()._metadata().items() if k != "crop_size"}

    path = str(tmp_path / "1")
    serving.save(OldServer(exported[0].G, ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"], 32,
                           crop_size=150), path)
    assert Translator.from_export(path).crop_size == 178


def test_folder_model_exports_its_rafd_crop_size(exported, tmp_path):  # noqa: F811
    config = tiny_config(tmp_path, dataset="RaFD", rafd_classes=["angry", "happy", "neutral", "sad", "surprised"],
                         rafd_crop_size=200)
    assert int(build_server(exported[0].G, config).metadata()["crop_size"]) == 200


def cli(exported_path, inputs, output, *args):
    return translate.main(["--export_dir", exported_path, "--input", *map(str, inputs), "--output", str(output),
                           *args])


@pytest.fixture(scope="module")
def photo_file(astronaut, tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


def test_cli_fractional_set_reaches_the_model(exported, tmp_path, photo_file):  # noqa: F811
    solver, path = exported
    assert cli(path, [photo_file], tmp_path, "--source", "Black_Hair=1,Young=1", "--set", "Blond_Hair=0.6") == 0
    x = serving.decode_square(tf.constant(photo_file.read_bytes()), 32).numpy()[None]
    expected = (solver.G([x, np.array([[0.4, 0.6, 0, 0, 1]], np.float32)]).numpy()[0] + 1) * 127.5
    got = np.asarray(Image.open(tmp_path / "astronaut.png"), np.float32)
    assert np.abs(got - expected).max() <= 0.5 + 1e-3  # PNG rounding only


def test_cli_strip_writes_the_input_and_five_values(exported, tmp_path, photo_file):  # noqa: F811
    assert cli(exported[1], [photo_file], tmp_path, "--strip", "Male") == 0
    split_header(tmp_path / "astronaut-strip.png", rows=1, columns=6, side=32 * 3)


def test_cli_align_faces_writes_the_full_photo_changed_only_inside_the_mask(exported, tmp_path, photo_file,  # noqa: F811
                                                                             astronaut, face):
    assert cli(exported[1], [photo_file], tmp_path, "--align_faces", "--set", "Blond_Hair=1") == 0
    out = np.asarray(Image.open(tmp_path / "astronaut.png"))
    outside = face_graph.paste_mask(astronaut.shape, face["matrices"]) == 0
    assert out.shape == (512, 512, 3)
    np.testing.assert_array_equal(out[outside], astronaut[outside])


def test_cli_align_faces_keeps_a_jpeg_photo_as_pil_decodes_it_outside_the_mask(exported, tmp_path, astronaut, detector):
    """A JPEG's pixels are those of libjpeg's accurate IDCT, as PIL (and browsers) decode them; TensorFlow's default
    fast IDCT differs by up to 17 levels on this photo, which would rewrite every pixel of the edited photo."""
    path = tmp_path / "in" / "astronaut.jpg"
    path.parent.mkdir()
    Image.fromarray(astronaut).save(path, quality=95)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert np.abs(tf.io.decode_jpeg(path.read_bytes()).numpy().astype(int) - decoded).max() > 2  # the fast IDCT
    assert cli(exported[1], [path], tmp_path / "out", "--align_faces", "--set", "Blond_Hair=1") == 0
    out = np.asarray(Image.open(tmp_path / "out" / "astronaut.png"))
    outside = face_graph.paste_mask(decoded.shape, face_graph.face_matrices(find(detector, decoded)["landmarks"])) == 0
    assert outside.mean() > 0.8
    np.testing.assert_array_equal(out[outside], decoded[outside])


def test_cli_align_faces_changes_the_face(exported, tmp_path, photo_file, astronaut, face):  # noqa: F811
    assert cli(exported[1], [photo_file], tmp_path, "--align_faces") == 0
    out = np.asarray(Image.open(tmp_path / "astronaut.png"), np.float32)
    inside = face_graph.paste_mask(astronaut.shape, face["matrices"]) == 1
    assert np.abs(out[inside] - astronaut[inside]).mean() > 10


def test_cli_align_faces_strip_has_one_row_per_face(exported, tmp_path, twins):  # noqa: F811
    Image.fromarray(twins).save(tmp_path / "twins.png")
    assert cli(exported[1], [tmp_path / "twins.png"], tmp_path / "out", "--align_faces", "--strip", "Male") == 0
    split_header(tmp_path / "out" / "twins-strip.png", rows=2, columns=6, side=32 * 3)


def test_cli_no_face_names_the_file_and_writes_nothing(exported, tmp_path, photo_file, capsys):  # noqa: F811
    Image.fromarray(skdata.coffee()).save(tmp_path / "coffee.png")
    code = cli(exported[1], [photo_file, tmp_path / "coffee.png"], tmp_path / "out", "--align_faces")
    assert (code, capsys.readouterr().err) == (2, f"error: {tmp_path / 'coffee.png'}: no face found (mtcnn "
                                                  "confidence >= 0.95); pass --fallback_center_crop to translate its "
                                                  "centre square instead, or a lower --min_face_confidence\n")
    assert not os.path.exists(tmp_path / "out")


def test_cli_fallback_translates_the_centre_square(exported, tmp_path):  # noqa: F811
    Image.fromarray(skdata.coffee()).save(tmp_path / "coffee.png")
    assert cli(exported[1], [tmp_path / "coffee.png"], tmp_path / "plain") == 0
    assert cli(exported[1], [tmp_path / "coffee.png"], tmp_path / "aligned", "--align_faces",
               "--fallback_center_crop") == 0
    assert (tmp_path / "aligned" / "coffee.png").read_bytes() == (tmp_path / "plain" / "coffee.png").read_bytes()


def test_cli_without_mtcnn_names_the_faces_extra(exported, tmp_path, photo_file, capsys, without_mtcnn):  # noqa: F811
    """`exported` stores no detector (made without --include_faces), so --align_faces needs the faces extra's."""
    code = cli(exported[1], [photo_file], tmp_path, "--align_faces")
    hint = 'install the faces extra: pip install -e ".[faces]" in the clone'
    assert (code, hint in capsys.readouterr().err) == (2, True)


@pytest.mark.parametrize("args,message", [
    (["--grid", "--strip", "Male"], "--grid and --strip each write one image per photo; choose one"),
    (["--fallback_center_crop"], "--fallback_center_crop and --min_face_confidence apply only with --align_faces"),
    (["--align_faces", "--min_face_confidence", "1.5"], "--min_face_confidence must lie in (0, 1], got 1.5"),
    (["--strip", "Bald"], "unknown attribute 'Bald'; valid names: Black_Hair, Blond_Hair, Brown_Hair, Male, Young"),
])
def test_cli_option_errors(exported, tmp_path, photo_file, capsys, args, message):  # noqa: F811
    assert (cli(exported[1], [photo_file], tmp_path, *args), capsys.readouterr().err) == (2, f"error: {message}\n")
