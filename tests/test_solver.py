"""End to end through the Solver: train, checkpoint, resume exactly, test mode, TensorBoard."""

import dataclasses
import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from stargan_tf.solver import Solver
from tests.helpers.configs import tiny_config
from tests.helpers.grids import split_header


def run(config, **changes):
    config = dataclasses.replace(config, **changes)
    solver = Solver(config)
    return solver, (solver.train() if config.mode == "train" else solver.test())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_dataset):
    """One 10-iteration run (checkpoints at 5 and 10) shared by the checks below."""
    out = tmp_path_factory.mktemp("run")
    config = tiny_config(out, demo_dataset, num_iters=10, num_iters_decay=5, lr_update_step=2, log_step=5,
                         sample_step=5, model_save_step=5)
    solver, last = run(config)
    return config, solver, last


def test_training_writes_checkpoints_samples_and_config(trained):
    config, solver, last = trained
    assert last == 10
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(config.model_save_dir, "ckpt-*.index"))) == [
        "ckpt-10.index", "ckpt-5.index"]
    stored = json.load(open(os.path.join(config.model_save_dir, "config.json")))
    assert stored["image_size"] == 32 and stored["seed"] == 7
    # input + 5 domains, one row per image of the batch, enlarged 3 times (the automatic --view_scale of 32 px)
    split_header(os.path.join(config.sample_dir, "10-images.png"), rows=4, columns=6, side=32 * 3)


def test_resume_continues_exactly(trained, tmp_path):
    config, solver, _ = trained
    resumed_dir = tmp_path / "models"
    resumed_dir.mkdir()
    for f in glob.glob(os.path.join(config.model_save_dir, "*")):
        if "ckpt-10" not in os.path.basename(f) and os.path.basename(f) != "checkpoint":
            os.link(f, resumed_dir / os.path.basename(f))
    resumed, last = run(config, resume_iters=5, model_save_dir=str(resumed_dir), log_dir=str(tmp_path / "l"),
                        sample_dir=str(tmp_path / "s"))
    assert last == 10
    assert int(resumed.trainer.step.numpy()) == 10
    assert int(resumed.trainer.d_optimizer.iterations.numpy()) == 10
    assert int(resumed.trainer.g_optimizer.iterations.numpy()) == 10 // config.n_critic
    # The moving average of G too: restored from the checkpoint of step 5, not started again from G.
    for a, b in zip(solver.G.get_weights() + solver.D.get_weights() + solver.trainer.G_ema.get_weights(),
                    resumed.G.get_weights() + resumed.D.get_weights() + resumed.trainer.G_ema.get_weights(),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(solver.trainer.G_ema.get_weights(), solver.G.get_weights(),
                                                   strict=True)) > 1e-5  # the average is not G


def test_resume_from_missing_step_lists_available(trained, tmp_path):
    config, _, _ = trained
    with pytest.raises(FileNotFoundError, match="no checkpoint for step 7 .*available steps: 5, 10"):
        run(config, resume_iters=7, log_dir=str(tmp_path / "l"))


def test_resume_with_other_architecture_is_refused(trained, tmp_path):
    config, _, _ = trained
    with pytest.raises(ValueError, match="--g_conv_dim 8 \\(stored\\) vs 16 \\(given\\)"):
        run(config, resume_iters=5, g_conv_dim=16, log_dir=str(tmp_path / "l"))


def test_test_mode_writes_one_grid_per_batch(trained, tmp_path):
    config, _, _ = trained
    _, written = run(config, mode="test", test_iters="latest", result_dir=str(tmp_path / "results"))
    assert [os.path.basename(p) for p in written] == ["1-images.png", "2-images.png"]  # 8 test images, batch 4
    split_header(written[0], rows=4, columns=6, side=32 * 3)  # a header, then the grid enlarged 3 times


def test_test_mode_builds_the_generator_alone(trained, tmp_path):
    config, solver, _ = trained
    tester = Solver(dataclasses.replace(config, mode="test", test_iters=10, result_dir=str(tmp_path / "results")))
    assert tester.trainer is None and not hasattr(tester, "D")
    assert tester.sampler.count_params() == solver.sampler.count_params()  # G's size; no D, no optimizer slots


def test_the_schedule_starts_from_the_configured_rates(trained):
    config, solver, _ = trained
    # Not from the optimizers' float32 variables (9.9999997e-05), so the decayed rates are those of the formula.
    assert (solver.trainer.g_base_lr, solver.trainer.d_base_lr) == (config.g_lr, config.d_lr) == (1e-4, 1e-4)


def test_the_config_handed_in_is_left_as_it_was(trained, tmp_path):
    config, solver, _ = trained
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    unseeded = dataclasses.replace(config, seed=None, mode="test", test_iters=10)
    assert Solver(unseeded).config.seed is not None and unseeded.seed is None


def test_tensorboard_holds_scalars_and_sample_images(trained):
    config, _, _ = trained
    acc = event_accumulator.EventAccumulator(config.log_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    for tag in ("D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp", "G/loss_fake", "G/loss_rec", "G/loss_cls",
                "lr/g_lr", "lr/d_lr"):
        assert tag in tags
    assert [e.step for e in acc.Tensors("D/loss_gp")] == [5, 10]
    assert "samples" in acc.PluginTagToContent("images")
    width, height = acc.Tensors("samples")[-1].tensor_proto.string_val[:2]
    saved = Image.open(os.path.join(config.sample_dir, "10-images.png")).size
    assert (int(width), int(height)) == saved and saved[0] == 32 * 6 * 3  # the grid saved as the PNG
    # The rate used by the logged iteration: 1e-4 until step 5, then (10 - 8) / 5 of it after the update at 8.
    lr = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("lr/g_lr")]
    assert lr == [pytest.approx(1e-4), pytest.approx(0.4e-4)]
    losses = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("D/loss_gp")]
    assert all(np.isfinite(losses))


def test_fresh_training_refuses_to_overwrite_checkpoints(trained, tmp_path):
    config, _, _ = trained
    with pytest.raises(ValueError, match="already holds checkpoints \\(steps 5, 10\\); continue with --resume_iters"):
        run(config, log_dir=str(tmp_path / "l"), sample_dir=str(tmp_path / "s"))


def test_eval_step_writes_the_measures_to_tensorboard(demo_dataset, tmp_path, capsys):
    config = tiny_config(tmp_path, demo_dataset, num_iters=4, log_step=2, sample_step=100, model_save_step=4,
                         eval_step=2, eval_images=6)
    run(config)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Evaluation at step")]
    assert [line.split(" (")[0] for line in printed] == ["Evaluation at step 2", "Evaluation at step 4"]
    assert "(CelebA, 6 held-out images): translation_target_accuracy " in printed[0]
    judges = os.listdir(os.path.join(config.model_save_dir, "judges"))
    assert len(judges) == 1 and judges[0].startswith("CelebA-") and judges[0].endswith(".keras")
    acc = event_accumulator.EventAccumulator(config.log_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    for tag in ("eval/translation_target_accuracy", "eval/attribute_preservation", "eval/classifier_real_test_accuracy",
                "eval/reconstruction_l1", "eval/reconstruction_psnr", "eval/reconstruction_ssim",
                "eval/per_attribute_target_accuracy/Male", "eval/per_attribute_preservation/Young"):
        assert tag in tags, tag
    assert [e.step for e in acc.Tensors("eval/reconstruction_psnr")] == [2, 4]
    values = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("eval/translation_target_accuracy")]
    assert all(0.0 <= v <= 1.0 for v in values)


def test_eval_step_on_a_folder_dataset_needs_held_out_images(tmp_path):
    from stargan_tf.demo_data import generate_shapes_dataset

    train_dir, test_dir = generate_shapes_dataset(str(tmp_path / "shapes"), 6, 3, seed=0)
    config = tiny_config(tmp_path, dataset="RaFD", rafd_image_dir=train_dir, num_iters=2, eval_step=2,
                         use_tensorboard=False)
    with pytest.raises(ValueError, match="--eval_step needs held-out images of the folder dataset: pass --eval_dir"):
        run(config)
    solver, _ = run(config, eval_dir=test_dir, model_save_dir=str(tmp_path / "m2"))
    assert solver.sources[0].test[0][0].startswith(test_dir)


def test_the_run_estimates_its_training_time_after_the_traced_steps(tmp_path, demo_dataset, capsys):
    """n_critic 2: steps 1 and 2 trace D's step and D and G's; steps 5-24 are timed, 6 of 30 steps are left."""
    config = tiny_config(tmp_path, demo_dataset, num_iters=30, log_step=100, sample_step=100, model_save_step=100,
                         use_tensorboard=False)
    run(config)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Estimate: ")]
    assert len(lines) == 1, lines
    assert re.fullmatch(r"Estimate: \d+\.\d{3} s per step over steps 5-24, so about 0:00:\d\d for the 6 steps left "
                        r"\(samples, evaluations and checkpoints not counted\)", lines[0]), lines[0]
