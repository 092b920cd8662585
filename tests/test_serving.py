"""The export: signatures as served, checked in a process that never imports stargan_tf."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_tf import export as export_cli
from stargan_tf import preprocessing, serving, translate
from stargan_tf.export import export_generator
from stargan_tf.translator import Translator, pixel_budget
from tests.helpers.grids import split_header
from tests.helpers.hostile_images import WEBP_HEAD, encode, gif, noise, png_bomb, top_down_bmp
from tests.helpers.images import jpeg_with_exif_after, photo, png_bytes
from tests.helpers.in_process import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "2"}


def test_export_goes_into_a_version_folder_named_by_step(exported):
    _, path = exported
    assert os.path.basename(path) == "5"
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert [d for d in os.listdir(os.path.dirname(path))] == ["5"]  # no temporary folder left behind


def test_existing_version_is_not_overwritten(exported):
    solver, path = exported
    with pytest.raises(FileExistsError, match="already exists; pass --version"):
        export_generator(solver.config.model_save_dir, os.path.dirname(path))


FRESH_PROCESS = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    inputs = np.load(sys.argv[2])
    out = {}
    out["float"] = loaded.signatures["serving_default"](image=tf.constant(inputs["image"]),
                                                       label=tf.constant(inputs["label"]))["image"].numpy()
    pngs = loaded.signatures["translate_bytes"](image_bytes=tf.constant([inputs["jpeg"].tobytes(),
                                                                         inputs["png"].tobytes()]),
                                               label=tf.constant(inputs["label"][:2]))["image_bytes"].numpy()
    out["decoded"] = np.stack([tf.io.decode_png(p).numpy() for p in pngs])
    meta = loaded.signatures["metadata"]()
    out["names"] = meta["attribute_names"].numpy().astype(str)
    out["size"] = meta["image_size"].numpy()
    out["groups"] = meta["exclusive_group"].numpy()
    out["imported"] = np.array([m == "stargan_tf" or m.startswith("stargan_tf.") for m in sys.modules]).any()
    np.savez(sys.argv[3], **out)
""")


def test_fresh_process_without_stargan_tf_matches_keras(exported, tmp_path):
    solver, path = exported
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    label = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 1, 1]], np.float32)
    jpeg, png = png_bytes(photo(size=(60, 44)), "JPEG"), png_bytes(photo("RGBA", seed=2))
    np.savez(tmp_path / "in.npz", image=image, label=label, jpeg=np.frombuffer(jpeg, np.uint8),
             png=np.frombuffer(png, np.uint8))
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    subprocess.run([sys.executable, str(script), path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                   check=True, cwd=str(tmp_path), env=ENV)
    out = np.load(tmp_path / "out.npz")
    assert not out["imported"]
    np.testing.assert_allclose(out["float"], solver.G([image, label]).numpy(), atol=1e-5)
    inputs = np.stack([serving.decode_square(tf.constant(b), 32).numpy() for b in (jpeg, png)])
    expected = (solver.G([inputs, label[:2]]).numpy() + 1) * 127.5
    assert out["decoded"].shape == (2, 32, 32, 3)
    assert np.abs(out["decoded"].astype(np.float32) - expected).max() <= 0.5 + 1e-3  # PNG rounding only
    assert list(out["names"]) == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert int(out["size"]) == 32
    assert list(out["groups"]) == [0, 0, 0, -1, -1]


def saved_model_cli(*args):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return subprocess.run([cli, *args], check=True, capture_output=True, text=True, env=ENV).stdout


def parse_signatures(text):
    """saved_model_cli's listing as {signature: {"inputs"/"outputs": {name: (dtype, shape)}}}."""
    signatures, current, side, name, dtype = {}, None, None, None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("signature_def["):
            current = signatures.setdefault(line.split("'")[1], {"inputs": {}, "outputs": {}})
        elif line.startswith(("inputs[", "outputs[")) and current is not None:
            side, name = line.split("[")[0], line.split("'")[1]
        elif line.startswith("dtype:"):
            dtype = line.split()[1]
        elif line.startswith("shape:") and side:
            current[side][name] = (dtype, line.split(":", 1)[1].strip())
    signatures.pop("__saved_model_init_op", None)
    return signatures


def test_saved_model_cli_lists_exactly_the_signatures(exported):
    _, path = exported
    assert parse_signatures(saved_model_cli("show", "--dir", path, "--all")) == {
        "serving_default": {"inputs": {"image": ("DT_FLOAT", "(-1, 32, 32, 3)"), "label": ("DT_FLOAT", "(-1, 5)")},
                            "outputs": {"image": ("DT_FLOAT", "(-1, 32, 32, 3)")}},
        "translate_bytes": {"inputs": {"image_bytes": ("DT_STRING", "(-1)"), "label": ("DT_FLOAT", "(-1, 5)")},
                            "outputs": {"image_bytes": ("DT_STRING", "(-1)")}},
        "metadata": {"inputs": {}, "outputs": {"attribute_names": ("DT_STRING", "(5)"),
                                               "image_size": ("DT_INT32", "()"),
                                               "exclusive_group": ("DT_INT32", "(5)"),
                                               "label_dataset": ("DT_STRING", "(5)"),
                                               "max_pixels": ("DT_INT64", "()"),
                                               "crop_size": ("DT_INT32", "()")}},
    }


def test_saved_model_cli_run_with_npy_inputs(exported, tmp_path):
    solver, path = exported
    image = np.random.default_rng(4).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    label = np.array([[0, 1, 0, 1, 1], [1, 0, 0, 0, 0]], np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "label.npy", label)
    saved_model_cli("run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
                    "--inputs", f"image={tmp_path / 'image.npy'};label={tmp_path / 'label.npy'}",
                    "--outdir", str(tmp_path / "out"))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "image.npy"), solver.G([image, label]).numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])


GOOD_IMAGE = np.zeros((1, 32, 32, 3), np.float32)
GOOD_LABEL = np.zeros((1, 5), np.float32)


IMAGE_SHAPE = r"image must have shape \(N, 32, 32, 3\); got shape\] "


@pytest.mark.parametrize("image,label,message", [
    (GOOD_IMAGE, np.zeros((1, 4), np.float32), r"label must have shape \(N, 5\); got shape\] \[1 4\]"),
    (np.zeros((1, 16, 16, 3), np.float32), GOOD_LABEL, IMAGE_SHAPE + r"\[1 16 16 3\]"),
    (np.zeros((32, 32, 3), np.float32), GOOD_LABEL, IMAGE_SHAPE + r"\[32 32 3\]"),
    (GOOD_IMAGE, np.full((1, 5), 2.0, np.float32), r"label values must lie in \[0, 1\]"),
    (np.zeros((2, 32, 32, 3), np.float32), GOOD_LABEL, "image and label batch sizes differ"),
    (np.where(np.arange(32)[:, None, None] == 5, np.nan, GOOD_IMAGE).astype(np.float32), GOOD_LABEL,
     r"image values must be finite; NaN or inf found in\] \[96\] \[values"),
    (np.full((1, 32, 32, 3), np.inf, np.float32), GOOD_LABEL, r"NaN or inf found in\] \[3072\]"),
    (np.full((1, 32, 32, 3), -np.inf, np.float32), GOOD_LABEL, r"NaN or inf found in\] \[3072\]"),
])
def test_bad_float_inputs_raise_invalid_argument(loaded, image, label, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](image=tf.constant(image), label=tf.constant(label))


def test_bytes_that_are_not_an_image_raise_invalid_argument(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes holds no JPEG, PNG, GIF or BMP image"):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([b"hello, not a picture"]),
                                             label=tf.constant(GOOD_LABEL))


def test_bytes_label_of_wrong_width_raises_invalid_argument(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label must have shape \(N, 5\)"):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([png_bytes(photo())]),
                                             label=tf.constant(np.zeros((1, 6), np.float32)))


def run_translate_process(*args):
    """The translate command in a process of its own, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "stargan_tf.translate", *args], capture_output=True, text=True,
                          cwd=ROOT, env=ENV)


def run_translate(*args):
    """translate's main in this process: its exit code and what it printed."""
    return run_main(translate.main, args)


def test_translate_cli_on_jpeg_png_with_alpha_and_grayscale(exported, tmp_path):
    _, path = exported
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo(size=(80, 60)).save(inputs / "a.jpg")
    photo("RGBA", seed=1).save(inputs / "b.png")
    photo("L", seed=2).save(inputs / "c.png")
    result = run_translate_process("--export_dir", os.path.dirname(path), "--input", str(inputs), "--source",
                           "Black_Hair=1,Male=1", "--set", "Blond_Hair=1", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(tmp_path / "out"))
    assert written == ["a.png", "b.png", "c.png"]
    assert all(Image.open(tmp_path / "out" / f).size == (32, 32) for f in written)


def test_translate_cli_label_applies_exclusive_group(exported, tmp_path):
    solver, path = exported
    photo().save(tmp_path / "p.png")
    result = run_translate("--export_dir", path, "--input", str(tmp_path / "p.png"), "--source",
                           "Black_Hair=1,Young=1", "--set", "Blond_Hair=1", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    got = np.asarray(Image.open(tmp_path / "out" / "p.png"), np.float32)
    x = serving.decode_square(tf.constant(png_bytes(photo())), 32).numpy()[None]
    expected = (solver.G([x, np.array([[0, 1, 0, 0, 1]], np.float32)]).numpy()[0] + 1) * 127.5
    assert np.abs(got - expected).max() <= 0.5 + 1e-3


def test_translate_cli_grid_from_checkpoint_dir(exported, tmp_path):
    solver, _ = exported
    photo("L").save(tmp_path / "g.jpg")
    result = run_translate("--model_save_dir", solver.config.model_save_dir, "--input", str(tmp_path / "g.jpg"),
                           "--grid", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    split_header(tmp_path / "out" / "g-grid.png", rows=1, columns=6, side=32 * 3)
    result = run_translate("--model_save_dir", solver.config.model_save_dir, "--input", str(tmp_path / "g.jpg"),
                           "--grid", "--view_scale", "1", "--output", str(tmp_path / "small"))
    assert result.returncode == 0, result.stderr
    _, small = split_header(tmp_path / "small" / "g-grid.png", rows=1, columns=6, side=32)
    _, large = split_header(tmp_path / "out" / "g-grid.png", rows=1, columns=6, side=32 * 3)
    np.testing.assert_array_equal(np.repeat(np.repeat(small, 3, axis=0), 3, axis=1), large)
    result = run_translate("--model_save_dir", solver.config.model_save_dir, "--input", str(tmp_path / "g.jpg"),
                           "--grid", "--view_scale", "-1", "--output", str(tmp_path / "bad"))
    assert (result.returncode, result.stderr) == (2, "error: --view_scale must be 0 (automatic) or more, got -1\n")


@pytest.mark.parametrize("args,message", [
    (["--set", "Bald=1"], "unknown attribute 'Bald'; valid names: Black_Hair, Blond_Hair, Brown_Hair, Male, Young"),
    (["--set", "Male=2"], "--set 'Male=2': values must lie in [0, 1], got 2"),
    (["--source", "Male"], "--source 'Male': expected NAME=VALUE"),
])
def test_translate_cli_errors(exported, tmp_path, args, message):
    photo().save(tmp_path / "p.png")
    result = run_translate("--export_dir", exported[1], "--input", str(tmp_path / "p.png"), *args,
                           "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr


def test_translate_cli_names_unreadable_file(exported, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    result = run_translate("--export_dir", exported[1], "--input", str(tmp_path / "notes.jpg"),
                           "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "notes.jpg: not a readable image" in result.stderr


def test_serving_config_roundtrip_is_json(exported):
    solver, _ = exported
    stored = json.load(open(os.path.join(solver.config.model_save_dir, "config.json")))
    assert dataclasses.asdict(solver.config)["selected_attrs"] == stored["selected_attrs"]


def test_webp_bytes_raise_invalid_argument_showing_the_first_bytes_in_hex(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[first bytes \(hex\):\] \[52 49 46 46 f4 9c 01 00\]"):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([WEBP_HEAD + bytes(100)]),
                                             label=tf.constant(GOOD_LABEL))


def test_serving_default_with_zero_images_returns_zero_rgb_images(loaded):
    out = loaded.signatures["serving_default"](image=tf.zeros([0, 32, 32, 3]), label=tf.zeros([0, 5]))["image"]
    assert out.shape == (0, 32, 32, 3)


def test_translate_bytes_with_zero_images_returns_zero_pngs(loaded):
    out = loaded.signatures["translate_bytes"](image_bytes=tf.zeros([0], tf.string), label=tf.zeros([0, 5]))
    assert out["image_bytes"].shape == (0,)


@pytest.fixture(scope="module")
def bomb():
    """A 49 KB PNG of 20000 x 20000 pixels."""
    return png_bomb(20000, 20000)


def test_bomb_png_is_refused_by_translate_bytes_before_decoding(loaded, bomb):
    """The header check's message, not an allocation failure or a 1.2 GB decode."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="20000 x 20000 image, 400000000 pixels to decode, "
                                                             "exceeds the budget of 50000000 pixels"):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([bomb]), label=tf.constant(GOOD_LABEL))


def test_translate_cli_refuses_bomb_png_without_traceback(exported, tmp_path, bomb):
    (tmp_path / "bomb.png").write_bytes(bomb)
    result = run_translate("--export_dir", exported[1], "--input", str(tmp_path / "bomb.png"),
                           "--output", str(tmp_path / "out"))
    assert (result.returncode, "Traceback" in result.stderr) == (2, False)
    assert (f"error: {tmp_path / 'bomb.png'}: 20000 x 20000 = 400,000,000 pixels exceeds the budget of 50,000,000 "
            "pixels (--max_pixels)") in result.stderr


SMALL_BUDGET = 1500  # 50 x 30 fits exactly; 79 x 19 = 1501 is one pixel over


@pytest.fixture(scope="module")
def small_budget(exported, tmp_path_factory):
    """The model exported again by export.py with --max_pixels 1500: the version folder."""
    out = tmp_path_factory.mktemp("small_budget")
    assert export_cli.main(["--model_save_dir", exported[0].config.model_save_dir, "--export_dir", str(out),
                            "--max_pixels", str(SMALL_BUDGET)]) == 0
    return str(out / "5")


@pytest.fixture(scope="module")
def small_loaded(small_budget):
    return tf.saved_model.load(small_budget)


FORMATS = {"PNG": lambda image: encode(image, "PNG"), "JPEG": lambda image: encode(image, "JPEG"),
           "GIF": lambda image: gif([image]), "BMP": lambda image: encode(image, "BMP"), "BMP top-down": top_down_bmp}


def translate_one(loaded, payload):
    return loaded.signatures["translate_bytes"](image_bytes=tf.constant([payload]),
                                                label=tf.constant(GOOD_LABEL))["image_bytes"].numpy()


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_at_the_budget_is_translated(small_loaded, fmt):
    png = translate_one(small_loaded, FORMATS[fmt](noise(50, 30)))[0]
    assert Image.open(io.BytesIO(png)).size == (32, 32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_one_pixel_over_the_budget_is_refused(small_loaded, fmt):
    with pytest.raises(tf.errors.InvalidArgumentError, match="79 x 19 image, 1501 pixels to decode, exceeds the "
                                                             "budget of 1500 pixels"):
        translate_one(small_loaded, FORMATS[fmt](noise(79, 19)))


def test_metadata_reports_the_pixel_budget(loaded, small_loaded):
    budgets = [int(m.signatures["metadata"]()["max_pixels"]) for m in (loaded, small_loaded)]
    assert budgets == [50_000_000, SMALL_BUDGET]


def test_export_cli_refuses_a_budget_below_one(exported, tmp_path, capsys):
    code = export_cli.main(["--model_save_dir", exported[0].config.model_save_dir, "--export_dir", str(tmp_path),
                            "--max_pixels", "0"])
    assert (code, capsys.readouterr().err) == (2, "error: --max_pixels must be a positive integer, got 0\n")


class ServerWithoutBudget(serving.GeneratorServer):
    """The metadata signature as exports had it before max_pixels."""

    def _metadata(self):
        return {k: v for k, v in super()._metadata().items() if k != "max_pixels"}


def test_export_without_max_pixels_loads_in_translate_with_the_default_budget(exported, tmp_path):
    path = str(tmp_path / "1")
    serving.save(ServerWithoutBudget(exported[0].G, ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"], 32),
                 path)
    assert pixel_budget(Translator.from_export(path), None) == preprocessing.MAX_PIXELS


def translate_cli(export_dir, inputs, output, *args):
    """translate.main in this process (no TF start-up): its exit code."""
    return translate.main(["--export_dir", export_dir, "--input", *map(str, inputs), "--output", str(output), *args])


def test_translate_cli_max_pixels_below_the_exports(exported, tmp_path, capsys):
    noise(50, 30).save(tmp_path / "p.png")
    code = translate_cli(exported[1], [tmp_path / "p.png"], tmp_path / "out", "--max_pixels", "1499")
    assert (code, capsys.readouterr().err) == (2, f"error: {tmp_path / 'p.png'}: 50 x 30 = 1,500 pixels exceeds the "
                                                  "budget of 1,499 pixels (--max_pixels)\n")


def test_translate_cli_max_pixels_above_the_exports_is_refused(small_budget, tmp_path, capsys):
    noise(50, 30).save(tmp_path / "p.png")
    code = translate_cli(small_budget, [tmp_path / "p.png"], tmp_path / "out", "--max_pixels", "1501")
    assert (code, capsys.readouterr().err) == (2, "error: --max_pixels 1,501 is above the export's budget of 1,500 "
                                                  "pixels; export again with export.py --max_pixels\n")


def test_translate_cli_translates_a_gifs_first_frame_as_pil_shows_it(exported, small_budget, tmp_path):
    """Two 30 x 30 frames: the export decodes the first only (900 pixels, within its budget of 1500)."""
    (tmp_path / "a.gif").write_bytes(gif([noise(30, 30, seed=1), noise(30, 30, seed=2)]))
    assert translate_cli(small_budget, [tmp_path / "a.gif"], tmp_path / "out") == 0
    first = serving.decode_square(tf.constant(png_bytes(Image.open(tmp_path / "a.gif").convert("RGB"))), 32)
    expected = (exported[0].G([first.numpy()[None], GOOD_LABEL]).numpy()[0] + 1) * 127.5
    got = np.asarray(Image.open(tmp_path / "out" / "a.png"), np.float32)
    assert np.abs(got - expected).max() <= 0.5 + 1e-3


def test_translate_bytes_decodes_frame_bombs_by_their_first_frame(small_loaded):
    """20 GIFs of 21,000 1 x 1 frames (315 kB each) in one request: each is its first frame, 1 pixel of the
    export's budget of 1,500 (all frames would be 21,000)."""
    frame = b"\x2c" + bytes(4) + b"\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"
    bomb = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 3 + b"\xff" * 3 + frame * 21_000 + b";"
    assert len(bomb) == 315_020
    pngs = small_loaded.signatures["translate_bytes"](image_bytes=tf.constant([bomb] * 20),
                                                      label=tf.constant(np.zeros((20, 5), np.float32)))["image_bytes"]
    assert len(set(pngs.numpy())) == 1 and Image.open(io.BytesIO(pngs.numpy()[0])).size == (32, 32)


def test_output_names_are_distinct_and_follow_input_order():
    files = ["in/d.jpg", "in/d.png", "more/d.png", "in/e.png", "in/d-png.bmp"]
    assert translate.output_names(files, ".png") == ["d-jpg.png", "d-png.png", "d-png-2.png", "e.png", "d-png-3.png"]


def test_output_names_differing_only_in_case_are_kept_apart():
    assert translate.output_names(["a/D.png", "b/d.png"], "-grid.png") == ["D-png-grid.png", "d-png-2-grid.png"]


def test_translate_cli_inputs_sharing_a_stem_get_distinct_outputs(exported, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("d.jpg", "d.png", "e.png"):
        noise(40, 40).save(tmp_path / "in" / name)
    assert translate_cli(exported[1], [tmp_path / "in"], tmp_path / "out") == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["d-jpg.png", "d-png.png", "e.png"]


def test_translate_cli_refuses_an_existing_output_before_writing_any(exported, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        noise(40, 40).save(tmp_path / "in" / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"earlier result")
    code = translate_cli(exported[1], [tmp_path / "in"], tmp_path / "out")
    assert (code, capsys.readouterr().err) == (2, f"error: {tmp_path / 'out' / 'b.png'} already exists; pass "
                                                  "--overwrite to replace\n")
    assert (os.listdir(tmp_path / "out"), (tmp_path / "out" / "b.png").read_bytes()) == (["b.png"], b"earlier result")


def test_translate_cli_overwrite_replaces_an_existing_output(exported, tmp_path):
    noise(40, 40).save(tmp_path / "p.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.png").write_bytes(b"earlier result")
    assert translate_cli(exported[1], [tmp_path / "p.png"], tmp_path / "out", "--overwrite") == 0
    assert Image.open(tmp_path / "out" / "p.png").size == (32, 32)


def test_translate_cli_output_that_is_a_file(exported, tmp_path, capsys):
    noise(40, 40).save(tmp_path / "p.png")
    (tmp_path / "out").write_text("a file")
    code = translate_cli(exported[1], [tmp_path / "p.png"], tmp_path / "out")
    assert (code, capsys.readouterr().err) == (2, f"error: --output {tmp_path / 'out'} is a file, expected a folder\n")


def test_translate_cli_never_replaces_an_input(exported, tmp_path, capsys):
    noise(40, 40).save(tmp_path / "p.png")
    code = translate_cli(exported[1], [tmp_path / "p.png"], tmp_path, "--overwrite")
    assert (code, capsys.readouterr().err) == (2, f"error: {tmp_path / 'p.png'} is also an input; choose another "
                                                  "--output\n")


def test_translate_cli_skips_a_fifo_in_an_input_folder_naming_it(tmp_path, capsys):
    """Reading a FIFO waits for a writer forever; a device or a broken link is no photo either."""
    folder = tmp_path / "in"
    folder.mkdir()
    noise(40, 40).save(folder / "a.png")
    os.mkfifo(folder / "b.jpg")
    os.symlink("/dev/null", folder / "c.png")
    os.symlink(tmp_path / "gone.png", folder / "d.png")
    assert translate.collect_inputs([str(folder)]) == [str(folder / "a.png")]
    assert capsys.readouterr().err == (f"--input {folder}: skipped 3 entries that are not regular files: "
                                       f"{folder / 'b.jpg'} (a FIFO), {folder / 'c.png'} (a character device), "
                                       f"{folder / 'd.png'} (a broken link)\n")
    with pytest.raises(FileNotFoundError, match=r"--input \S+b.jpg: a FIFO, expected an image file or a folder"):
        translate.collect_inputs([str(folder / "b.jpg")])


def exif_jpeg(orientation):
    """A 60 x 40 JPEG, dark left and bright right, whose EXIF orientation says how to turn it for showing."""
    pixels = np.asarray(noise(60, 40, seed=5), np.uint8) // 4
    pixels[:, 30:] += 180
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [6, 3])
def test_translate_cli_centre_square_follows_exif_orientation(exported, tmp_path, orientation):
    """The square translated is the photo's centre as shown (PIL's exif_transpose), as the app and --align_faces."""
    from PIL import ImageOps

    solver, path = exported
    (tmp_path / "p.jpg").write_bytes(exif_jpeg(orientation))
    assert translate_cli(path, [tmp_path / "p.jpg"], tmp_path / "out") == 0
    got = np.asarray(Image.open(tmp_path / "out" / "p.png"), np.float32)

    def translated(image):
        square = png_bytes(ImageOps.fit(image, (40, 40), method=Image.Resampling.NEAREST))
        x = serving.decode_square(tf.constant(square), 32).numpy()[None]
        return (solver.G([x, GOOD_LABEL]).numpy()[0] + 1) * 127.5

    shown = ImageOps.exif_transpose(Image.open(tmp_path / "p.jpg"))
    stored = Image.open(tmp_path / "p.jpg").convert("RGB")
    assert np.abs(got - translated(shown)).max() <= 1.5  # PNG rounding, libjpeg versions
    assert np.abs(got - translated(stored)).mean() > 3  # the photo as stored would read differently


class ServerWithoutOrientation(serving.GeneratorServer):
    """translate_bytes as exports had it before it read the EXIF orientation."""

    def _decode_all(self, image_bytes):
        def square(payload):
            image = preprocessing.decode_image(payload, None, max_pixels=self.max_pixels)
            return preprocessing.preprocess(image, None, self.image_size)

        return tf.map_fn(square, image_bytes, fn_output_signature=tf.TensorSpec([32, 32, 3], tf.float32))


def test_translate_cli_turns_photos_upright_for_exports_older_than_the_orientation(exported, tmp_path):
    """The CLI sends such an export the photo's centre square as shown: as if the upright photo had been given."""
    from PIL import ImageOps

    solver, _ = exported
    serving.save(ServerWithoutOrientation(solver.G, ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"], 32),
                 str(tmp_path / "old"))
    (tmp_path / "turned.jpg").write_bytes(exif_jpeg(6))
    ImageOps.exif_transpose(Image.open(tmp_path / "turned.jpg")).save(tmp_path / "shown.png")
    inputs = [tmp_path / "turned.jpg", tmp_path / "shown.png"]
    assert translate_cli(str(tmp_path / "old"), inputs, tmp_path / "out") == 0
    turned, shown = [np.asarray(Image.open(tmp_path / "out" / f), np.float32) for f in ("turned.png", "shown.png")]
    assert np.abs(turned - shown).max() <= 1.0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_exif_orientation_is_read_in_graph_as_pil_reads_it(fmt, endian):
    got, expected = [], []
    for orientation in [None, *range(1, 10)]:
        exif = Image.Exif()
        exif[0x010F] = "maker"  # a tag before the orientation in IFD0
        if orientation is not None:
            exif[0x0112] = orientation
        exif.endian = endian
        payload = encode(noise(6, 4), fmt, exif=exif.tobytes())
        got.append(int(preprocessing.exif_orientation(tf.constant(payload))))
        expected.append(Image.open(io.BytesIO(payload)).getexif().get(0x0112, 1))
    assert expected == [1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert got == [1, 1, 2, 3, 4, 5, 6, 7, 8, 1]  # 9 is no orientation: as shown unturned


@pytest.mark.parametrize("orientation", range(2, 9))
def test_translate_bytes_turns_the_photo_upright_by_its_exif_orientation(loaded, orientation):
    """The JPEG as stored, with its orientation tag, against the photo as shown (PIL's exif_transpose) as a PNG."""
    from PIL import ImageOps

    payload = exif_jpeg(orientation)
    shown = png_bytes(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))))
    pngs = loaded.signatures["translate_bytes"](image_bytes=tf.constant([payload, shown]),
                                                label=tf.constant(np.zeros((2, 5), np.float32)))["image_bytes"]
    turned, upright = [np.asarray(Image.open(io.BytesIO(p)), np.float32) for p in pngs.numpy()]
    assert np.abs(turned - upright).max() <= 1.0


def test_exif_orientation_reads_only_a_bounded_prefix():
    """The orientation is looked for in the first EXIF_PREFIX bytes only, so its work does not grow with the upload:
    an Exif segment starting after them is ignored (PIL would read it), one just before them is read."""
    bound = preprocessing.EXIF_PREFIX if hasattr(preprocessing, "EXIF_PREFIX") else 256 * 1024
    after, before = jpeg_with_exif_after(bound), jpeg_with_exif_after(bound - 1024)
    assert [Image.open(io.BytesIO(p)).getexif().get(0x0112) for p in (after, before)] == [6, 6]
    assert int(preprocessing.exif_orientation(tf.constant(after))) == 1
    assert int(preprocessing.exif_orientation(tf.constant(before))) == 6


@pytest.mark.parametrize("orientation", range(2, 9))
def test_centre_square_of_an_odd_margin_is_taken_from_the_photo_as_shown(orientation):
    """61 x 40: the margin of 21 columns is split 10 / 11, so the square of the photo as shown (PIL's
    exif_transpose, then the centre crop) is not the stored photo's square turned for orientations 2, 3, 7 and 8."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = encode(noise(61, 40, seed=3), "PNG", exif=exif.tobytes())
    shown = png_bytes(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))))
    np.testing.assert_array_equal(serving.decode_square(tf.constant(payload), 40).numpy(),
                                  serving.decode_square(tf.constant(shown), 40).numpy())
