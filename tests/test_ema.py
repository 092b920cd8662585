"""The moving average of G: its maths, its place in checkpoints and resume, and what export and test mode use."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from stargan_tf.checkpoints import checkpoint_path, has_ema, restore_generator
from stargan_tf.config import StarGANConfig
from stargan_tf.export import export_generator
from stargan_tf.solver import Solver
from stargan_tf.training import StarGANTrainer, ema_decay_at
from tests.helpers.batches import make_batch
from tests.helpers.configs import TINY, tiny_config


def test_decay_warms_up_then_holds_at_the_given_value():
    assert float(ema_decay_at(1, 0.999)) == pytest.approx(2 / 6)
    assert float(ema_decay_at(800, 0.999)) == pytest.approx(801 / 805)
    assert float(ema_decay_at(3995, 0.999)) == pytest.approx(0.999, abs=1e-6)
    assert float(ema_decay_at(100000, 0.999)) == pytest.approx(0.999)
    assert float(ema_decay_at(10, 0.5)) == pytest.approx(0.5)  # 11/15 is above the cap
    assert float(ema_decay_at(1, 0.999, warmup=10)) == pytest.approx(2 / 11)  # TensorFlow's warm-up


@pytest.mark.parametrize("precision", ["off", "bf16"])
def test_average_follows_each_g_update_by_hand(precision):
    keras.utils.set_random_seed(0)
    trainer = StarGANTrainer.from_config(StarGANConfig(**(TINY | {"n_critic": 2, "g_ema_decay": 0.9,
                                                       "mixed_precision": precision})).validate())
    assert all(v.dtype == "float32" for v in trainer.G_ema.weights)
    assert trainer.G_ema.get_layer("conv_in").compute_dtype == "float32"
    assert trainer.sampler is trainer.G_ema
    ema = trainer.G.get_weights()
    for a, b in zip(trainer.G_ema.get_weights(), ema, strict=True):
        np.testing.assert_array_equal(a, b)  # it starts as G
    for step in range(4):
        trainer.train_step({"CelebA": make_batch(step)})
        if step % 2 == 1:  # G was updated: its t-th update, decay min(0.9, (1 + t) / (5 + t))
            t = (step + 1) // 2
            decay = min(0.9, (1 + t) / (5 + t))
            ema = [decay * e + (1 - decay) * w for e, w in zip(ema, trainer.G.get_weights(), strict=True)]
        for a, b in zip(trainer.G_ema.get_weights(), ema, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(np.abs(a - b).max() > 1e-5 for a, b in zip(ema, trainer.G.get_weights(), strict=True))  # lags G


def test_no_average_when_decay_is_zero():
    trainer = StarGANTrainer.from_config(StarGANConfig(**TINY, g_ema_decay=0.0).validate())
    assert trainer.G_ema is None and trainer.sampler is trainer.G
    assert "generator_ema" not in dict(trainer.checkpoint()._trackable_children())


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_decay_outside_zero_one_is_refused(value):
    with pytest.raises(ValueError, match=r"--g_ema_decay must lie in \[0, 1\)"):
        StarGANConfig(**TINY, g_ema_decay=value).validate()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_dataset):
    """An 8-iteration run with the average on, checkpoints at 4 and 8 (a large G rate, so the average lags). Resuming
    restores the average: tests/test_solver.py's test_resume_continues_exactly."""
    out = tmp_path_factory.mktemp("ema")
    config = tiny_config(out, demo_dataset, num_iters=8, n_critic=2, g_ema_decay=0.9, g_lr=0.01, num_iters_decay=0,
                         log_step=4, sample_step=100, model_save_step=4, use_tensorboard=False)
    solver = Solver(config)
    solver.train()
    return config, solver, out


def outputs(model, seed=0):
    batch = make_batch(seed)
    return np.asarray(model([batch["image"], batch["label_trg"]], training=False))


def test_export_writes_the_average_unless_raw_is_asked(trained):
    config, solver, out = trained
    ema_export = tf.saved_model.load(export_generator(config.model_save_dir, str(out / "ema")))
    raw_export = tf.saved_model.load(export_generator(config.model_save_dir, str(out / "raw"), which="raw"))
    batch = make_batch(0)
    served = lambda loaded: loaded.signatures["serving_default"](  # noqa: E731
        image=batch["image"], label=batch["label_trg"])["image"].numpy()
    np.testing.assert_allclose(served(ema_export), outputs(solver.trainer.G_ema), atol=1e-5)
    np.testing.assert_allclose(served(raw_export), outputs(solver.G), atol=1e-5)
    assert np.abs(served(ema_export) - served(raw_export)).max() > 1e-3


def test_test_mode_translates_with_the_average(trained, tmp_path):
    config, solver, _ = trained
    tester = Solver(dataclasses.replace(config, mode="test", test_iters=8, result_dir=str(tmp_path / "r")))
    tester.test()
    np.testing.assert_allclose(outputs(tester.sampler), outputs(solver.trainer.G_ema), atol=1e-6)


def test_checkpoint_without_average_restores_g_and_starts_an_average_from_it(tmp_path, demo_dataset):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2, log_step=2, sample_step=100, model_save_step=2,
                         use_tensorboard=False, g_ema_decay=0.0)
    plain = Solver(config)
    plain.train()
    path = checkpoint_path(config.model_save_dir, 2)
    assert not has_ema(path)
    generator, _, _ = restore_generator(config.model_save_dir)  # auto: the trained G
    np.testing.assert_allclose(outputs(generator), outputs(plain.G), atol=1e-6)
    with pytest.raises(ValueError, match="holds no moving average of G .*use --generator raw"):
        restore_generator(config.model_save_dir, which="ema")
    resumed = Solver(dataclasses.replace(config, resume_iters=2, num_iters=4, g_ema_decay=0.9))
    resumed.train()
    assert has_ema(checkpoint_path(config.model_save_dir, 4))
    assert int(resumed.trainer.step.numpy()) == 4
