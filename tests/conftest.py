"""Shared fixtures: quiet TensorFlow, a small generated CelebA-layout dataset, a tiny run with two checkpoints, a
tiny exported model (the tiny configs are in tests/helpers/configs.py)."""

import atexit
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow keeps its default thread pools. One thread per pool made the suite about 10% faster (6:49 against 7:36
# on EPYC-BF16), but a tiny 10-step run then came out with other roundings now and then: 3 of 52 repeated resume
# checks were off by up to 4.4e-4, against 0 of 32 with the default pools, and the suite's resume checks failed in 3
# of about 10 runs.


def _end_worker_without_teardown():
    """An xdist worker has sent every result by the time atexit runs; freeing its hundreds of models and graphs
    one by one then kept `make test` waiting for about 8 s more. Registered first, so it runs after every other
    atexit handler."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_end_worker_without_teardown)


import pytest  # noqa: E402

from stargan_tf.demo_data import generate_demo_dataset  # noqa: E402

# Test files, slowest first (measured on EPYC-BF16 with two workers: test_keras_fit 161 s down to test_face_graph 10 s).
# `make test` runs them with --dist loadfile --no-loadscope-reorder, so the two workers take files in this order:
# the long ones start first and the short ones fill the end (xdist's own order, by test count, left one worker
# idle for the last 85 s). Files not named here follow in collection order.
SLOWEST_FIRST = ("test_keras_fit", "test_faults", "test_faults_probe2", "test_app", "test_distribute", "test_serving",
                 "test_ema", "test_edit_photo", "test_solver", "test_evaluation", "test_precision", "test_folders",
                 "test_faces", "test_convert", "test_training", "test_classify", "test_readme", "test_face_graph")


def pytest_collection_modifyitems(items):
    """Order the tests by SLOWEST_FIRST, file by file; within a file they keep their order."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """80 synthetic CelebA-layout images: (image_dir, attr_path)."""
    return generate_demo_dataset(str(tmp_path_factory.mktemp("demo") / "data"), num_images=80, seed=0)


@pytest.fixture(scope="session")
def trained_to_4(tmp_path_factory, demo_dataset):
    """A tiny run of 4 iterations saved at steps 2 and 4, trained once per test process: its config."""
    from tests.helpers.configs import tiny_config, trained

    config = tiny_config(tmp_path_factory.mktemp("trained"), demo_dataset, num_iters=4, model_save_step=2)
    trained(config)
    return config


@pytest.fixture()
def two_checkpoints(trained_to_4, tmp_path):
    """A copy of that run's model_save_dir (checkpoints of steps 2 and 4) in tmp_path, and the run's config there."""
    from tests.helpers.configs import tiny_config

    shutil.copytree(trained_to_4.model_save_dir, tmp_path / "models")
    return tiny_config(tmp_path, (trained_to_4.celeba_image_dir, trained_to_4.attr_path), num_iters=4,
                       model_save_step=2)


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
