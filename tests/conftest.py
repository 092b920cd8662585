"""Shared fixtures: quiet TensorFlow, a small generated CelebA-layout dataset, a tiny exported model (the tiny
configs are in tests/helpers/configs.py)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from stargan_tf.demo_data import generate_demo_dataset  # noqa: E402


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """80 synthetic CelebA-layout images: (image_dir, attr_path)."""
    return generate_demo_dataset(str(tmp_path_factory.mktemp("demo") / "data"), num_images=80, seed=0)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, demo_dataset):
    """A tiny model trained for 5 iterations and exported, trained once for every test module that uses it:
    (solver, export path)."""
    from tests.helpers import tiny_export

    out = tmp_path_factory.mktemp("export")
    solver = tiny_export.train(out, demo_dataset)
    return solver, tiny_export.export_serving(solver.config.model_save_dir, out / "serving")


@pytest.fixture(scope="session")
def classifier_export(exported, tmp_path_factory):
    """The tiny model exported again by export.py with --include_classifier: the version folder."""
    from tests.helpers import tiny_export

    return tiny_export.export_with_classifier(exported[0].config.model_save_dir,
                                              tmp_path_factory.mktemp("with_classifier"))
