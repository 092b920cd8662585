"""Shared fixtures: quiet TensorFlow, a small generated CelebA-layout dataset, tiny configs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from stargan_tf.config import StarGANConfig  # noqa: E402
from stargan_tf.demo_data import generate_demo_dataset  # noqa: E402

# XLA off: compiling a tiny model's steps takes far longer than the few steps a test runs (tests/test_precision.py
# checks that XLA computes the same).
TINY = dict(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=4,
            mixed_precision="off", jit_compile=False)


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


def tiny_config(out_dir, demo=None, **changes):
    """A validated 32x32 config with small widths writing under `out_dir`; `demo` is (image_dir, attr_path)."""
    values = dict(TINY, seed=7, test_size=8, log_dir=str(out_dir / "logs"), model_save_dir=str(out_dir / "models"),
                  sample_dir=str(out_dir / "samples"), result_dir=str(out_dir / "results"))
    if demo is not None:
        values.update(celeba_image_dir=demo[0], attr_path=demo[1])
    values.update(changes)
    return StarGANConfig(**values).validate()
