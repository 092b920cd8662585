"""The tests' tiny model: trained for 5 iterations on the demo data and exported, as the conftest fixtures `exported`
and `classifier_export` and tests/helpers/app_memory.py use it."""

import os
from pathlib import Path

ITERATIONS = 5


def train(out_dir, demo):
    """A Solver trained for 5 iterations on `demo` ((image_dir, attr_path)) under `out_dir`, saved at its last step."""
    from stargan_tf.solver import Solver
    from tests.helpers.configs import tiny_config

    config = tiny_config(Path(out_dir), demo, num_iters=ITERATIONS, log_step=ITERATIONS, sample_step=100,
                         model_save_step=ITERATIONS, use_tensorboard=False, seed=3)
    solver = Solver(config)
    solver.train()
    return solver


def export_serving(model_save_dir, out_dir):
    """export_generator's SavedModel of the model in `model_save_dir`, under `out_dir`: its path."""
    from stargan_tf.export import export_generator

    return export_generator(model_save_dir, str(out_dir))


def export_with_classifier(model_save_dir, out_dir):
    """export.py --include_classifier of the model in `model_save_dir` into `out_dir`: the version folder."""
    from stargan_tf import export

    if export.main(["--model_save_dir", model_save_dir, "--export_dir", str(out_dir), "--include_classifier"]):
        raise RuntimeError(f"exporting {model_save_dir} with its classifier failed")
    return os.path.join(str(out_dir), str(ITERATIONS))


def tiny_export(folder):
    """The whole chain in `folder`: the demo data (as the `demo_dataset` fixture makes it), the training and the
    export with the classifier; the version folder."""
    from stargan_tf.demo_data import generate_demo_dataset

    demo = generate_demo_dataset(os.path.join(folder, "data"), num_images=80, seed=0)
    solver = train(folder, demo)
    return export_with_classifier(solver.config.model_save_dir, os.path.join(folder, "export"))
