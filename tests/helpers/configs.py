"""Tiny configs for tests (32x32, small widths, float32, no XLA), and `trained`: a config, changed, trained."""

import dataclasses

from stargan_tf.config import StarGANConfig

# XLA off: compiling a tiny model's steps takes far longer than the few steps a test runs (tests/test_precision.py
# checks that XLA computes the same).
TINY = dict(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=4,
            mixed_precision="off", jit_compile=False)


def tiny_config(out_dir, demo=None, **changes):
    """A validated 32x32 config with small widths writing under `out_dir`; `demo` is (image_dir, attr_path)."""
    values = dict(TINY, seed=7, test_size=8, log_dir=str(out_dir / "logs"), model_save_dir=str(out_dir / "models"),
                  sample_dir=str(out_dir / "samples"), result_dir=str(out_dir / "results"))
    if demo is not None:
        values.update(celeba_image_dir=demo[0], attr_path=demo[1])
    values.update(changes)
    return StarGANConfig(**values).validate()


def trained(config, **changes):
    """`config` with `changes`, trained by train.py's Solver: (the solver, the last step it trained)."""
    from stargan_tf.solver import Solver

    solver = Solver(dataclasses.replace(config, **changes))
    return solver, solver.train()
