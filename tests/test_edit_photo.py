"""The edit_photo signature (export.py --include_faces): whole photos in, every face edited in the graph, PNG out."""

import gc
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from skimage import data as skdata

from stargan_tf import app, export, face_graph, preprocessing, translate
from stargan_tf.translator import Translator
from tests.helpers.face_photos import collage
from tests.helpers.hostile_images import png_bomb

pytest.importorskip("mtcnn")

BLOND = np.array([0, 1, 0, 0, 0], np.float32)  # --set Blond_Hair=1 from the default --source (all 0)
MALE = np.array([0, 0, 0, 1, 0], np.float32)
MAX_FACES = 2  # the collage holds 3 faces: the third best is left untouched


def encode(pixels, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
    """{name: bytes}: the astronaut (PNG); a JPEG collage of her at 512, 256 and mirrored at 384 px on a grey
    1800 x 1000 canvas (3 faces: tests/helpers/face_photos.collage); a coffee cup (no face)."""
    astronaut = skdata.astronaut()
    return {"astronaut": encode(astronaut), "collage": encode(collage(astronaut), "JPEG"),
            "coffee": encode(skdata.coffee())}


@pytest.fixture(scope="module")
def face_export(exported, tmp_path_factory):
    """The tiny model exported once with --include_faces --max_faces 2 --include_classifier: the version folder."""
    out = tmp_path_factory.mktemp("with_faces")
    assert export.main(["--model_save_dir", exported[0].config.model_save_dir, "--export_dir", str(out),
                        "--include_faces", "--max_faces", str(MAX_FACES), "--include_classifier"]) == 0
    return str(out / "5")


@pytest.fixture(scope="module")
def translator(face_export):
    """The export loaded once in this process (the fresh-process test loads it on its own)."""
    return Translator.from_export(face_export)


@pytest.fixture
def cli_loads_once(face_export, translator, monkeypatch):
    """translate's CLI given --export_dir face_export gets `translator` instead of loading the export again."""
    load = Translator.from_export
    monkeypatch.setattr(Translator, "from_export",
                        staticmethod(lambda path: translator if path == face_export else load(path)))


FRESH = """
import sys
sys.modules["mtcnn"] = sys.modules["stargan_tf"] = None
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
photos = np.load(sys.argv[2])
edit = loaded.signatures["edit_photo"]
names = ["astronaut", "collage", "coffee"]
out = edit(image_bytes=tf.constant([photos[n].tobytes() for n in names]),
           label=tf.constant(np.stack([photos["blond"], photos["male"], photos["blond"]])))
result = {k: v.numpy() for k, v in out.items() if k != "image_bytes"}
result.update({f"png_{n}": np.frombuffer(v, np.uint8) for n, v in zip(names, out["image_bytes"].numpy())})
try:
    edit(image_bytes=tf.constant([photos["bomb"].tobytes()]), label=tf.constant(photos["blond"][None]))
except tf.errors.InvalidArgumentError as e:
    result["bomb_error"] = np.array(e.message)
meta = loaded.signatures["metadata"]()
result.update(faces=meta["faces"].numpy(), max_faces=meta["max_faces"].numpy())
np.savez(sys.argv[3], **result)
"""


@pytest.fixture(scope="module")
def fresh(face_export, photos, tmp_path_factory):
    """edit_photo's outputs in a fresh process where stargan_tf and mtcnn cannot be imported: one batch of the
    astronaut (to blond), the collage (to male) and the coffee cup, then a 20000 x 20000 PNG bomb."""
    folder = tmp_path_factory.mktemp("fresh")
    np.savez(folder / "in.npz", blond=BLOND, male=MALE, bomb=np.frombuffer(png_bomb(20000, 20000), np.uint8),
             **{k: np.frombuffer(v, np.uint8) for k, v in photos.items()})
    subprocess.run([sys.executable, "-c", FRESH, face_export, str(folder / "in.npz"), str(folder / "out.npz")],
                   check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return dict(np.load(folder / "out.npz"))


def decoded(payload):
    """The photo's pixels as the signature decodes them (JPEG: libjpeg's accurate IDCT)."""
    return preprocessing.decode_image(tf.constant(payload), None).numpy()


def mask_of(shape, landmarks):
    """float32 (H, W): the most any face (landmarks (N, 5, 2)) replaces of each pixel when pasted back."""
    return face_graph.paste_mask(shape, face_graph.face_matrices(landmarks))


def outside_masks(shape, landmarks):
    """bool (H, W): pixels no edited face's feathered mask touches."""
    return mask_of(shape, landmarks) == 0


def png_of(fresh, name):
    return fresh[f"png_{name}"].tobytes()


def test_metadata_says_faces_are_included_with_their_cap(fresh):
    assert (bool(fresh["faces"]), int(fresh["max_faces"])) == (True, MAX_FACES)


def test_astronaut_comes_back_full_size_changed_only_inside_the_face(fresh, photos):
    source = decoded(photos["astronaut"])
    out = tf.io.decode_png(png_of(fresh, "astronaut")).numpy()
    outside = outside_masks(source.shape, fresh["landmarks"][0, :1])
    change = np.abs(out.astype(int) - source)[~outside].mean()
    assert (out.shape, int(fresh["num_faces"][0]), int(fresh["num_edited"][0])) == ((512, 512, 3), 1, 1)
    assert (np.array_equal(out[outside], source[outside]), change > 5) == (True, True), change


def test_astronaut_landmarks_and_box_are_where_mtcnn_finds_them(fresh):
    """Padded to max_faces; the one face within 2 px (box) and 1.5 px (landmarks) of mtcnn's rounded values."""
    mtcnn_landmarks = [[204, 100], [245, 102], [224, 126], [202, 139], [244, 140]]
    assert (fresh["boxes"].shape, fresh["landmarks"].shape, fresh["scores"].shape) == (
        (3, MAX_FACES, 4), (3, MAX_FACES, 5, 2), (3, MAX_FACES))
    assert np.abs(fresh["landmarks"][0, 0] - mtcnn_landmarks).max() < 1.5
    assert (fresh["scores"][0, 0] > 0.99, (fresh["scores"][0, 1:] == 0).all()) == (True, True)


def test_collage_faces_beyond_max_faces_are_counted_and_left_untouched(translator, fresh, photos):
    """3 faces found (by the export's own detector, every face), the 2 best edited; the third (lowest score) keeps
    every byte the JPEG decodes to."""
    source = decoded(photos["collage"])
    out = tf.io.decode_png(png_of(fresh, "collage")).numpy()
    every = translator.find_faces(source)["landmarks"]
    edited = fresh["landmarks"][1]
    untouched = [points for points in every if np.abs(edited - points[None]).max(axis=(1, 2)).min() > 3]
    assert (out.shape, int(fresh["num_faces"][1]), int(fresh["num_edited"][1]), len(every), len(untouched)) == (
        (1000, 1800, 3), 3, MAX_FACES, 3, 1)
    outside = outside_masks(source.shape, edited)
    third = mask_of(source.shape, untouched[0][None]) > 0
    assert (np.array_equal(out[outside], source[outside]), (third & outside).sum() == third.sum()) == (True, True)
    for points in edited:
        inside = mask_of(source.shape, points[None]) > 0.5
        assert np.abs(out.astype(int) - source)[inside].mean() > 5


def test_a_photo_without_a_face_comes_back_unchanged_with_no_face_counted(fresh, photos):
    out = tf.io.decode_png(png_of(fresh, "coffee")).numpy()
    np.testing.assert_array_equal(out, decoded(photos["coffee"]))
    assert (int(fresh["num_faces"][2]), int(fresh["num_edited"][2]), float(np.abs(fresh["boxes"][2]).sum())) == (
        0, 0, 0.0)


def test_the_pixel_budget_refuses_a_bomb_before_decoding(fresh):
    assert "20000 x 20000 image, 400000000 pixels to decode, exceeds the budget of 50000000 pixels" in str(
        fresh["bomb_error"])


def test_edit_photo_equals_face_graphs_steps_around_translate_bytes_on_its_own_landmarks(translator, fresh, photos):
    """face_graph's crops of the signature's landmarks, translated by translate_bytes (the crops as PNGs) and pasted
    back in this process, give the fresh process's bytes."""
    source = decoded(photos["astronaut"])
    matrices = face_graph.face_matrices(fresh["landmarks"][0, :1])
    crops = face_graph.training_crops(source, matrices, translator.crop_size).numpy()
    translated = translator.translate_crops(crops, BLOND[None])
    expected = face_graph.paste_back(source, matrices, translated, translator.crop_size).numpy()
    np.testing.assert_array_equal(tf.io.decode_png(png_of(fresh, "astronaut")).numpy(), expected)


def test_translate_cli_writes_the_signatures_bytes_from_an_export_and_from_the_checkpoint(
        exported, face_export, cli_loads_once, fresh, photos, tmp_path, capsys):
    """translate --align_faces runs edit_photo: the file it writes is the fresh process's PNG, byte for byte, with
    the export and with the checkpoint folder (the same tf.functions built in-process)."""
    (tmp_path / "astronaut.png").write_bytes(photos["astronaut"])
    common = ["--input", str(tmp_path / "astronaut.png"), "--set", "Blond_Hair=1", "--align_faces"]
    assert translate.main(["--export_dir", face_export, *common, "--output", str(tmp_path / "export")]) == 0
    assert translate.main(["--model_save_dir", exported[0].config.model_save_dir, *common,
                           "--output", str(tmp_path / "checkpoint")]) == 0
    written = [(tmp_path / folder / "astronaut.png").read_bytes() for folder in ("export", "checkpoint")]
    assert written == [png_of(fresh, "astronaut")] * 2
    assert capsys.readouterr().out.count("(1 face)") == 2


def test_translate_cli_names_a_photo_without_a_face_before_writing_anything(face_export, cli_loads_once, photos,
                                                                           tmp_path, capsys):
    for name in ("astronaut", "coffee"):
        (tmp_path / f"{name}.png").write_bytes(photos[name])
    code = translate.main(["--export_dir", face_export, "--input", str(tmp_path / "astronaut.png"),
                           str(tmp_path / "coffee.png"), "--align_faces", "--output", str(tmp_path / "out")])
    assert (code, os.path.exists(tmp_path / "out")) == (2, False)
    assert f"error: {tmp_path / 'coffee.png'}: no face found" in capsys.readouterr().err


def test_an_export_without_faces_keeps_its_signatures_and_metadata_keys(exported):
    loaded = tf.saved_model.load(exported[1])
    assert (sorted(loaded.signatures), sorted(loaded.signatures["metadata"]())) == (
        ["metadata", "serving_default", "translate_bytes"],
        ["attribute_names", "crop_size", "exclusive_group", "image_size", "label_dataset", "max_pixels"])


def test_export_refuses_max_faces_below_one(exported, tmp_path, capsys):
    code = export.main(["--model_save_dir", exported[0].config.model_save_dir, "--export_dir", str(tmp_path),
                        "--include_faces", "--max_faces", "0"])
    assert (code, capsys.readouterr().err) == (2, "error: --max_faces must be a positive integer, got 0\n")



def test_edit_photo_auto_keeps_each_faces_own_attributes_but_the_set_ones(translator, photos):
    """edit_photo_auto with Blond_Hair set: the face's own attributes are D's rounded prediction on its crop (what
    translate --source auto predicts), and the photo equals edit_photo's with the label translate would build."""
    auto = translator.edit_photo(photos["astronaut"], BLOND, BLOND)
    landmarks = auto["landmarks"][: int(auto["num_edited"])].astype(np.float64)
    crops = face_graph.training_crops(decoded(photos["astronaut"]), face_graph.face_matrices(landmarks),
                                      translator.crop_size).numpy()
    pairs = translator.own_pairs(translator.classify_crops(crops)[0])
    label = translate.label_rows(translator, pairs, [("Blond_Hair", 1.0)])[0]
    plain = translator.edit_photo(photos["astronaut"], label)
    assert (auto["own"].shape, int(auto["num_edited"])) == ((MAX_FACES, 5), 1)
    np.testing.assert_array_equal(auto["own"][0], [value for _, value in pairs])
    assert (label[1], bytes(auto["image_bytes"]) == bytes(plain["image_bytes"])) == (1.0, True)


def test_translate_cli_source_auto_writes_edit_photo_autos_bytes(face_export, cli_loads_once, translator, photos,
                                                                 tmp_path, capsys):
    (tmp_path / "astronaut.png").write_bytes(photos["astronaut"])
    assert translate.main(["--export_dir", face_export, "--input", str(tmp_path / "astronaut.png"),
                           "--source", "auto", "--set", "Blond_Hair=1", "--align_faces",
                           "--output", str(tmp_path / "out")]) == 0
    auto = translator.edit_photo(photos["astronaut"], BLOND, BLOND)
    own = translate.stated(translator.own_pairs(auto["own"][0]))
    assert (tmp_path / "out" / "astronaut.png").read_bytes() == bytes(auto["image_bytes"])
    assert f"(1 face) (own attributes: {own})" in capsys.readouterr().out


def test_app_renders_the_photo_edit_photo_auto_returns(translator, photos, tmp_path):
    """The app edits through the same graph: its blond result is the signature's photo (which the CLI writes)."""
    editor = app.Editor(translator, out_dir=str(tmp_path))
    view = editor.upload(photos["astronaut"], "astronaut.png")
    values = ["Blond_Hair" if control.choice else value for control, value in zip(editor.controls, view.values,
                                                                                     strict=True)]
    result = editor.edit(view.photo, values).result
    expected = tf.io.decode_png(translator.edit_photo(photos["astronaut"], BLOND, BLOND)["image_bytes"]).numpy()
    assert (view.message.startswith("astronaut.png: 1 face found"), len(view.crops)) == (True, 1), view.message
    np.testing.assert_array_equal(result, expected)


def test_a_photo_comes_back_turned_upright_by_its_exif_orientation(translator):
    """A 600 x 400 coffee photo stored on its side (EXIF orientation 6): returned 400 wide and 600 high, as shown."""
    image = Image.fromarray(skdata.coffee())
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    out = tf.io.decode_png(translator.edit_photo(buffer.getvalue(), BLOND)["image_bytes"]).numpy()
    assert out.shape == (600, 400, 3)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))).convert("RGB")  # as viewers show it
    np.testing.assert_array_equal(out, np.asarray(shown))


def test_app_from_a_checkpoint_folder_edits_in_the_graph(exported):
    """The app given --model_save_dir builds the checkpoint's edit_photo graph, as an export made with
    --include_faces has it, instead of face_graph's functions around translate_bytes."""
    editor = app.load_editor(app.parse_args(["--model_save_dir", exported[0].config.model_save_dir]))
    assert editor.translator.can_edit_photo and editor.in_graph


@pytest.mark.parametrize("mode,size", [("RGB", (1, 1)), ("L", (7, 5)), ("RGBA", (40, 30)), ("P", (16, 16))])
def test_tiny_grey_alpha_and_palette_photos_come_back_as_decoded_without_a_face(translator, mode, size):
    """Edge inputs give a face count of 0 and the photo back, never an error: a 1x1 pixel (an empty pyramid), grey,
    RGBA and palette PNGs (decoded to RGB as everywhere else)."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).convert(mode).save(buffer, format="PNG")
    payload = buffer.getvalue()
    out = translator.edit_photo(payload, BLOND)
    assert int(out["num_faces"]) == 0
    np.testing.assert_array_equal(tf.io.decode_png(out["image_bytes"]).numpy(), decoded(payload))


def test_an_empty_batch_returns_an_empty_batch(face_export):
    edit = tf.saved_model.load(face_export).signatures["edit_photo"]
    out = edit(image_bytes=tf.constant([], tf.string), label=tf.zeros([0, 5]))
    assert out["image_bytes"].shape == (0,) and out["boxes"].shape == (0, MAX_FACES, 4)


def test_edit_pixels_of_a_loaded_export_gives_edit_photos_bytes_after_the_export_object_is_gone(face_export, photos):
    """The app's call on the decoded photo: the same graph, so its PNG is the signature's; the export's variables
    stay alive without the loaded object (functions that are not signatures do not hold them)."""
    loaded = Translator.from_export(face_export)
    gc.collect()
    out = loaded.edit_pixels(decoded(photos["astronaut"]), BLOND)
    assert (int(out["num_faces"]), out["image"].shape) == (1, (512, 512, 3))
    assert tf.io.encode_png(out["image"]).numpy() == bytes(loaded.edit_photo(photos["astronaut"], BLOND)["image_bytes"])
