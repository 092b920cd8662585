"""export --include_classifier: D's classification head as the `classify` signature, and translate --source auto."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from stargan_tf import domains, face_graph, serving, translate
from stargan_tf.export import build_server
from stargan_tf.models import build_discriminator, build_generator
from stargan_tf.translator import NO_CLASSIFIER, Translator
from tests.helpers.classifier import d_probabilities
from tests.helpers.configs import tiny_config
from tests.helpers.images import photo, png_bytes

ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def stored_parameters(path):
    """{top-level tracked name: number of stored float parameters} in an export's variables."""
    counts = {}
    for name, shape in tf.train.list_variables(os.path.join(path, "variables", "variables")):
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH":
            counts[name.split("/")[0]] = counts.get(name.split("/")[0], 0) + int(np.prod(shape))
    return counts


def test_classify_equals_d_head_on_the_same_preprocessed_image(exported, classifier_export):  # noqa: F811
    payloads = [png_bytes(photo(size=(60, 44)), "JPEG"), png_bytes(photo("RGBA", seed=2))]
    loaded = tf.saved_model.load(classifier_export)
    got = loaded.signatures["classify"](image_bytes=tf.constant(payloads))["probabilities"].numpy()
    np.testing.assert_allclose(got, d_probabilities(exported[0], payloads), atol=1e-5)


def test_classifier_export_stores_d_beside_g(exported, classifier_export):  # noqa: F811
    solver = exported[0]
    assert stored_parameters(classifier_export) == {"generator_variables": solver.G.count_params(),
                                                    "discriminator_variables": solver.D.count_params()}


def test_default_export_stores_g_only(exported):  # noqa: F811
    assert stored_parameters(exported[1]) == {"generator_variables": exported[0].G.count_params()}


def test_default_export_has_no_classify_signature(exported):  # noqa: F811
    assert sorted(tf.saved_model.load(exported[1]).signatures) == ["metadata", "serving_default", "translate_bytes"]


def test_old_export_loads_without_a_classifier(exported):  # noqa: F811
    assert Translator.from_export(exported[1]).can_classify is False


def test_joint_model_classifies_each_part_and_zeroes_the_mask(tmp_path):
    """CelebA part: sigmoid per attribute; RaFD part: softmax over its 3 classes; the 2 mask entries: 0."""
    config = tiny_config(tmp_path, dataset="Both", rafd_classes=["angry", "happy", "sad"])
    layout = domains.layout_for(config)
    generator = build_generator(32, layout.dim, 8, 2)
    discriminator = build_discriminator(32, layout.cls_dim, 8, 5)
    server = build_server(generator, config, discriminator=discriminator)
    payload = png_bytes(photo(size=(40, 40)))
    got = server.classify(tf.constant([payload]))["probabilities"].numpy()[0]
    logits = discriminator(serving.decode_square(tf.constant(payload), 32)[None])[1].numpy()[0]
    expected = np.concatenate([tf.sigmoid(logits[:5]).numpy(), tf.nn.softmax(logits[5:]).numpy(), [0.0, 0.0]])
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("probabilities,expected", [
    ([0.7, 0.9, 0.2, 0.6, 0.4], [0, 1, 0, 1, 0]),  # two hair colours over 0.5: only the most likely is set
    ([0.3, 0.4, 0.1, 0.5, 0.49], [0, 0, 0, 1, 0]),  # no hair colour reaches 0.5: none is set
])
def test_predicted_attributes_set_at_most_one_hair_colour(probabilities, expected):
    np.testing.assert_array_equal(domains.predicted_part(domains.attribute_spec(ATTRS), probabilities), expected)


def test_predicted_folder_class_is_the_most_likely_even_below_half():
    spec = domains.class_spec(["angry", "happy", "sad"])
    np.testing.assert_array_equal(domains.predicted_part(spec, [0.3, 0.45, 0.25]), [0, 1, 0])


def said(own):
    """The printed '(own attributes: ...)' text for a 0/1 label over ATTRS."""
    return ",".join(f"{name}=1" for name, value in zip(ATTRS, own.tolist(), strict=True) if value == 1) or "none"


def cli(path, inputs, output, *args):
    return translate.main(["--export_dir", path, "--input", *map(str, inputs), "--output", str(output), *args])


def test_source_auto_reaches_the_label(exported, classifier_export, tmp_path, capsys):  # noqa: F811
    solver = exported[0]
    payload = png_bytes(photo(size=(50, 50), seed=5))
    (tmp_path / "p.png").write_bytes(payload)
    own = domains.predicted_part(domains.attribute_spec(ATTRS), d_probabilities(solver, [payload])[0])
    target = domains.set_attribute(domains.attribute_spec(ATTRS), own[None], 3, 1.0)
    assert target.tolist() != [[0, 0, 0, 1, 0]]  # the premise: D's attributes differ from --source's default
    assert cli(classifier_export, [tmp_path / "p.png"], tmp_path / "out", "--source", "auto", "--set", "Male=1") == 0
    x = serving.decode_square(tf.constant(payload), 32).numpy()[None]
    expected = (solver.G([x, target]).numpy()[0] + 1) * 127.5
    got = np.asarray(Image.open(tmp_path / "out" / "p.png"), np.float32)
    assert np.abs(got - expected).max() <= 0.5 + 1e-3  # PNG rounding only
    assert f"(own attributes: {said(own)})" in capsys.readouterr().out


def test_source_auto_classifies_each_aligned_face(exported, classifier_export, tmp_path, capsys):  # noqa: F811
    """The printed attributes are D's on the aligned training crop, and the photo equals one made with them given."""
    solver = exported[0]
    astronaut = skdata.astronaut()
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    found = face_graph.load_detector().detect(astronaut, max_faces=None)
    crop = face_graph.training_crops(astronaut, face_graph.face_matrices(found["landmarks"]), 178).numpy()[0]
    own = domains.predicted_part(domains.attribute_spec(ATTRS), d_probabilities(solver, [png_bytes(
        Image.fromarray(crop))])[0])
    source = ",".join(f"{n}={v:g}" for n, v in zip(ATTRS, own.tolist(), strict=True))
    assert cli(classifier_export, [tmp_path / "astronaut.png"], tmp_path / "auto", "--align_faces", "--source", "auto",
               "--set", "Young=1") == 0
    assert f"(own attributes: {said(own)})" in capsys.readouterr().out
    assert cli(classifier_export, [tmp_path / "astronaut.png"], tmp_path / "given", "--align_faces", "--source",
               source, "--set", "Young=1") == 0
    assert (tmp_path / "auto" / "astronaut.png").read_bytes() == (tmp_path / "given" / "astronaut.png").read_bytes()


def test_source_auto_without_classify_says_to_re_export(exported, tmp_path, capsys):  # noqa: F811
    photo().save(tmp_path / "p.png")
    code = cli(exported[1], [tmp_path / "p.png"], tmp_path / "out", "--source", "auto")
    assert (code, capsys.readouterr().err) == (2, f"error: --source auto: {NO_CLASSIFIER}\n")
    assert "export again with export.py --include_classifier" in NO_CLASSIFIER


def test_source_auto_stands_alone(classifier_export, tmp_path, capsys):
    photo().save(tmp_path / "p.png")
    code = cli(classifier_export, [tmp_path / "p.png"], tmp_path / "out", "--source", "auto", "--source", "Male=1")
    assert (code, capsys.readouterr().err) == (2, "error: --source auto predicts every attribute; give it alone, and "
                                                  "changes with --set\n")


def test_source_auto_from_a_checkpoint_dir_uses_its_discriminator(exported, classifier_export, tmp_path):  # noqa: F811
    photo(size=(50, 50), seed=5).save(tmp_path / "p.png")
    assert cli(classifier_export, [tmp_path / "p.png"], tmp_path / "export", "--source", "auto") == 0
    assert translate.main(["--model_save_dir", exported[0].config.model_save_dir, "--input", str(tmp_path / "p.png"),
                           "--output", str(tmp_path / "ckpt"), "--source", "auto"]) == 0
    assert (tmp_path / "export" / "p.png").read_bytes() == (tmp_path / "ckpt" / "p.png").read_bytes()
