"""Shared fixtures: quiet TensorFlow, a small generated CelebA-layout dataset, tiny configs."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pytest  # noqa: E402

from stargan_tf.config import StarGANConfig  # noqa: E402
from stargan_tf.demo_data import generate_demo_dataset  # noqa: E402

TINY = dict(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=4,
            mixed_precision="off")


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """80 synthetic CelebA-layout images: (image_dir, attr_path)."""
    return generate_demo_dataset(str(tmp_path_factory.mktemp("demo") / "data"), num_images=80, seed=0)


@pytest.fixture
def tiny_config(demo_dataset, tmp_path):
    """A 32x32 config with small widths, pointing at the demo dataset and a fresh output folder."""
    image_dir, attr_path = demo_dataset
    return StarGANConfig(
        **TINY, num_iters=10, num_iters_decay=5, lr_update_step=2, log_step=5, sample_step=5, model_save_step=5,
        celeba_image_dir=image_dir, attr_path=attr_path, seed=7, test_size=8,
        log_dir=str(tmp_path / "logs"), model_save_dir=str(tmp_path / "models"),
        sample_dir=str(tmp_path / "samples"), result_dir=str(tmp_path / "results"),
    ).validate()
