"""stargan_tf.StarGAN: fit() trains exactly as train.py does, on one device or mirrored, and its state survives
save_weights/load_weights, BackupAndRestore after kill -9, and the project's checkpoint, sample and evaluation
callbacks."""

import json
import os
import re
import signal
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from stargan_tf import Evaluate, SampleGrid, StarGAN, StarGANCheckpoint, checkpoints, data, export, measures
from stargan_tf.callbacks import first_images
from stargan_tf.demo_data import generate_shapes_dataset
from stargan_tf.lock import FolderInUse, FolderLock
from stargan_tf.models import build_discriminator, build_generator
from stargan_tf.solver import Solver
from stargan_tf.stopping import TrainingStopped
from stargan_tf.training import NonFiniteLoss, TrainingError, learning_rate_at
from tests.helpers.configs import tiny_config
from tests.helpers.faults import full_disk
from tests.helpers.grids import split_header
from tests.helpers.in_process import run_main
from tests.helpers.workers import default_pools_env, env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPERS = os.path.join(ROOT, "tests", "helpers")
CELEBA_FILES = {}


def celeba_splits(config):
    key = (config.celeba_image_dir, config.test_size)
    if key not in CELEBA_FILES:
        CELEBA_FILES[key] = data.celeba_files(config.celeba_image_dir, config.attr_path, config.selected_attrs,
                                              config.test_size)
    return CELEBA_FILES[key]


def batches(model, start=0):
    """The stream train.py reads for `model.config` (one dataset, one device)."""
    config = model.config
    (paths, labels), _ = celeba_splits(config)
    return data.train_dataset(paths, labels, config.celeba_crop_size, config.image_size, config.batch_size,
                              seed=config.seed, start_batch=start,
                              labels_to_model=lambda part: model.layout.encode("CelebA", part))


def new_model(config, seed=None, **kwargs):
    keras.utils.set_random_seed(config.seed if seed is None else seed)
    model = StarGAN(config, **kwargs)
    model.compile()
    return model


def checkpoint_values(prefix):
    """{name: value} of every variable a checkpoint holds (not its object graph, which names Keras objects)."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def assert_same_weights(a_models, b_models):
    for a_model, b_model in zip(a_models, b_models, strict=True):
        for a, b in zip(a_model.get_weights(), b_model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def cli_and_fit(tmp_path_factory, demo_dataset):
    """train.py's Solver and StarGAN.fit (2 epochs of 3 steps), 6 steps each from the same seed and data stream:
    n_critic 2 updates G at steps 2, 4 and 6, and the rates fall from step 4 on. Both sample and save at step 6."""
    config = tiny_config(tmp_path_factory.mktemp("cli"), demo_dataset, num_iters=6, num_iters_decay=4,
                         lr_update_step=2, log_step=100, sample_step=6, model_save_step=6, use_tensorboard=False)
    solver = Solver(config)
    solver.train()
    out = tmp_path_factory.mktemp("fit")
    model = new_model(config)
    _, (test_paths, test_labels) = celeba_splits(config)
    samples = {"CelebA": first_images(test_paths, test_labels, config.celeba_crop_size, config.image_size,
                                      config.batch_size)}
    history = model.fit(batches(model), epochs=2, steps_per_epoch=3, verbose=0, callbacks=[
        StarGANCheckpoint(str(out / "models"), every_n_steps=6), SampleGrid(str(out / "samples"), samples, 6)])
    return config, solver, model, history, out


def test_fit_trains_the_weights_train_py_trains(cli_and_fit):
    _, solver, model, _, _ = cli_and_fit
    assert int(model.step.numpy()) == 6
    assert [int(model.g_optimizer.iterations.numpy()), int(model.d_optimizer.iterations.numpy())] == [3, 6]
    assert_same_weights([model.generator, model.discriminator, model.generator_ema],
                        [solver.G, solver.D, solver.trainer.G_ema])


def test_fit_logs_the_learning_rates_of_the_schedule(cli_and_fit):
    _, _, _, history, _ = cli_and_fit
    # Epoch 1 ends with step 2 (0-based), still at 1e-4; epoch 2 with step 5, after the update at 4: (6 - 4) / 4 of it.
    assert history.history["lr/g_lr"] == [pytest.approx(1e-4), pytest.approx(0.5e-4)]
    assert history.history["lr/d_lr"] == [pytest.approx(1e-4), pytest.approx(0.5e-4)]


def test_checkpoint_callback_writes_what_train_py_writes(cli_and_fit):
    config, _, _, _, out = cli_and_fit
    ours, theirs = str(out / "models"), config.model_save_dir
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs)) == [
        ".lock", "checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index", "config.json"]
    assert json.load(open(os.path.join(ours, "config.json"))) == json.load(open(os.path.join(theirs, "config.json")))
    a, b = checkpoint_values(os.path.join(ours, "ckpt-6")), checkpoint_values(os.path.join(theirs, "ckpt-6"))
    assert sorted(a) == sorted(b) and len(a) == 154
    for name, value in b.items():
        np.testing.assert_array_equal(a[name], value, err_msg=name)


def test_sample_grid_equals_train_py_sample(cli_and_fit):
    config, _, _, _, out = cli_and_fit
    assert os.listdir(out / "samples") == ["6-images.png"]
    ours = np.asarray(Image.open(out / "samples" / "6-images.png"))
    assert ours.shape == (32 * 4, 32 * 6, 3)  # SampleGrid without view_scale: the bare grid
    _, theirs = split_header(os.path.join(config.sample_dir, "6-images.png"), rows=4, columns=6, side=32 * 3)
    np.testing.assert_array_equal(np.repeat(np.repeat(ours, 3, axis=0), 3, axis=1), theirs)


def test_mirrored_fit_equals_one_device(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(HELPERS, "keras_fit_mirrored.py"), str(tmp_path / "data")],
                            capture_output=True, text=True, env=default_pools_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and out["same_strategy"]
    assert out["steps"] == [4, 4] and out["g_iterations"] == [2, 2]
    # Each gradient is the same float32 sum in another order: at most n * u apart for n terms (the tolerance of
    # tests/test_distribute.py: n = 8 images x 32 x 32 pixels, u = 2^-24), with TensorFlow's default pools.
    tolerance = 8 * 32 * 32 * 2.0**-24
    assert out["generator"] < tolerance and out["discriminator"] < tolerance and out["generator_ema"] < tolerance
    assert out["generator_moved"] > 1e-4  # the 4 steps did change G: the agreement is not that of untouched weights


def run_example(out_dir, kill_at=None):
    args = [sys.executable, os.path.join(HELPERS, "keras_fit_example.py"), str(out_dir)]
    return subprocess.run(args + ([str(kill_at)] if kill_at else []), capture_output=True, text=True, env=env(),
                          timeout=600)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """examples/keras_fit.py --tiny run once from start to end: (out_dir, steps seen after each batch)."""
    out = tmp_path_factory.mktemp("example")
    result = run_example(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout.strip().splitlines()[-1])["steps"]


def test_example_writes_checkpoints_samples_and_tensorboard(example):
    out, steps = example
    assert steps == list(range(1, 13))
    assert sorted(os.listdir(out / "models")) == [".lock", "checkpoint", "ckpt-12.data-00000-of-00001",
                                                  "ckpt-12.index", "ckpt-6.data-00000-of-00001", "ckpt-6.index",
                                                  "config.json"]  # .lock: the folder lock, as train.py leaves it
    assert sorted(os.listdir(out / "samples")) == ["12-images.png", "6-images.png"]
    assert not os.path.exists(out / "backup")  # BackupAndRestore deletes its backup when fit() ends
    acc = event_accumulator.EventAccumulator(str(out / "logs" / "train"), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    assert [e.step for e in acc.Tensors("epoch_D/loss_gp")] == [0, 1, 2]
    lr = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch_lr/g_lr")]
    assert lr == [pytest.approx(learning_rate_at(s, 1e-4, 12, 6, 2)) for s in (3, 7, 11)]


def test_example_checkpoint_exports_with_export_py(example, tmp_path):
    out, _ = example
    result = run_main(export.main, ["--model_save_dir", str(out / "models"), "--export_dir", str(tmp_path / "export")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "export") == ["12"]
    assert os.path.isfile(tmp_path / "export" / "12" / "saved_model.pb")


def test_backup_and_restore_resumes_after_kill_9(example, tmp_path):
    killed = run_example(tmp_path, kill_at=5)  # backups at steps 3 and 6 (every 3 batches): killed 2 steps after one
    assert killed.returncode == -9
    assert json.load(open(tmp_path / "backup" / "training_metadata.json")) == {"epoch": 0, "batch": 2}
    resumed = run_example(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Keras replays epoch 0 (4 batches): the 3 the backup holds are skipped at step 3, then steps 4 to 12 train.
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == [3, 3, 3, *range(4, 13)]
    # The same data stream and state as the uninterrupted run: the same weights, optimizer moments and EMA.
    a, b = checkpoint_values(tmp_path / "models" / "ckpt-12"), checkpoint_values(example[0] / "models" / "ckpt-12")
    assert sorted(a) == sorted(b)
    for name, value in b.items():
        np.testing.assert_array_equal(a[name], value, err_msg=name)


def test_model_checkpoint_weights_round_trip(demo_dataset, tmp_path):
    config = tiny_config(tmp_path, demo_dataset, num_iters=3)
    model = new_model(config)
    path = str(tmp_path / "stargan.weights.h5")
    model.fit(batches(model), epochs=1, steps_per_epoch=3, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
    fresh = new_model(config, seed=config.seed + 1)
    fresh.load_weights(path)
    assert int(fresh.step.numpy()) == 3 and int(fresh.g_optimizer.iterations.numpy()) == 1
    assert len(model.weights) == 2 + 28 + 12 + 28  # step, epoch_step, G, D, the moving average of G
    assert_same_weights([model], [fresh])
    for a, b in zip(model.g_optimizer.variables + model.d_optimizer.variables,
                    fresh.g_optimizer.variables + fresh.d_optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_generator_and_discriminator_handed_in_train_like_built_ones(cli_and_fit):
    """The same 6 steps as the fixture's model, which StarGAN built itself from the same seed."""
    config, _, built, _, _ = cli_and_fit
    keras.utils.set_random_seed(config.seed)
    generator = build_generator(32, 5, config.g_conv_dim, config.g_repeat_num)
    discriminator = build_discriminator(32, 5, config.d_conv_dim, config.d_repeat_num)
    handed = StarGAN(config, generator=generator, discriminator=discriminator)
    handed.compile()
    assert handed.generator is generator and handed.discriminator is discriminator
    handed.fit(batches(handed), epochs=2, steps_per_epoch=3, verbose=0)
    assert_same_weights([handed.generator, handed.discriminator, handed.generator_ema],
                        [built.generator, built.discriminator, built.generator_ema])


def test_compiled_optimizers_follow_the_schedule_from_their_own_rates(demo_dataset, tmp_path):
    config = tiny_config(tmp_path, demo_dataset, num_iters=6, num_iters_decay=4, lr_update_step=2)
    model = new_model(config)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4), d_optimizer=keras.optimizers.Adam(3e-4))
    model.fit(batches(model), epochs=1, steps_per_epoch=5, verbose=0)
    # The last step (4) ran after the update at step 4: (6 - 4) / 4 of each base rate.
    assert float(model.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert float(model.d_optimizer.learning_rate.numpy()) == pytest.approx(1.5e-4)
    assert int(model.g_optimizer.iterations.numpy()) == 2


def test_compile_refuses_a_learning_rate_schedule(demo_dataset, tmp_path):
    model = new_model(tiny_config(tmp_path, demo_dataset))
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-4, 10, 0.5)
    with pytest.raises(ValueError, match="g_optimizer: pass a float learning rate, not a schedule"):
        model.compile(g_optimizer=keras.optimizers.Adam(schedule))


def test_evaluate_reports_the_measures(demo_dataset, tmp_path):
    config = tiny_config(tmp_path, demo_dataset, num_iters=4)
    model = new_model(config)
    train, held_out = celeba_splits(config)
    history = model.fit(batches(model), epochs=1, steps_per_epoch=4, verbose=0, callbacks=[Evaluate(
        {"CelebA": (train, held_out)}, every_n_steps=2, judge_dir=str(tmp_path / "judges"), eval_images=6,
        log_dir=str(tmp_path / "eval"))])
    judges = os.listdir(tmp_path / "judges")
    assert len(judges) == 1 and judges[0].startswith("CelebA-")
    judge = keras.models.load_model(tmp_path / "judges" / judges[0], compile=False)
    x, labels = measures.load_split(*held_out, config.celeba_crop_size, 32, limit=6)
    expected = measures.scalars(measures.measure(model.sampler, judge, model.layout, "CelebA", x, labels))
    assert {k: v[-1] for k, v in history.history.items() if k.startswith("eval/")} == pytest.approx(expected)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "eval"), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    assert [e.step for e in acc.Tensors("eval/reconstruction_psnr")] == [2, 4]


def test_joint_layout_trains_on_a_batch_of_each_dataset(demo_dataset, tmp_path):
    train_dir, _ = generate_shapes_dataset(str(tmp_path / "shapes"), 6, 2, seed=0)
    paths, labels, classes = data.read_class_folders(train_dir)
    config = tiny_config(tmp_path, demo_dataset, dataset="Both", rafd_image_dir=train_dir, rafd_classes=classes)
    model = new_model(config)
    celeba = batches(model)
    rafd = data.train_dataset(paths, labels, config.rafd_crop_size, 32, config.batch_size, seed=1,
                              labels_to_model=lambda part: model.layout.encode("RaFD", part))
    history = model.fit(tf.data.Dataset.zip({"CelebA": celeba, "RaFD": rafd}), epochs=1, steps_per_epoch=2, verbose=0)
    assert int(model.step.numpy()) == 2
    assert [int(model.d_optimizer.iterations.numpy()), int(model.g_optimizer.iterations.numpy())] == [4, 2]
    assert model.generator.inputs[1].shape[-1] == 5 + len(classes) + 2  # both parts and the mask vector
    assert {"CelebA/G/loss_rec", "RaFD/G/loss_rec", "CelebA/D/loss_cls", "RaFD/D/loss_cls"} <= set(history.history)


def test_fit_stops_at_a_non_finite_loss_and_keeps_the_finite_checkpoints(demo_dataset, tmp_path):
    config = tiny_config(tmp_path, demo_dataset, num_iters=50, d_lr=1e30, g_lr=1e30, num_iters_decay=0)
    model = new_model(config)
    saver = StarGANCheckpoint(config.model_save_dir, every_n_steps=1)
    with pytest.raises(NonFiniteLoss, match=r"step (\d+): .* = (nan|inf).*training stopped") as info:
        model.fit(batches(model), epochs=1, steps_per_epoch=50, verbose=0, callbacks=[saver])
    failed = info.value.step
    assert int(model.step.numpy()) == failed - 1 and not np.isfinite(list(info.value.terms.values())).any()
    assert [int(p.rsplit("-", 1)[1]) for p in saver.saved] == list(range(1, failed))
    assert failed > 1  # some finite steps came first, so something was saved
    with FolderLock(config.model_save_dir):  # fit() ended in an error, and the callback let go of the folder
        pass
    for prefix in saver.saved:
        values = [v for v in checkpoint_values(prefix).values() if np.issubdtype(np.asarray(v).dtype, np.floating)]
        assert all(np.isfinite(v).all() for v in values), prefix


def test_checkpoint_callback_holds_the_folder_lock_while_fit_runs(demo_dataset, tmp_path):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2)
    model = new_model(config)
    with FolderLock(config.model_save_dir), pytest.raises(FolderInUse, match="is in use by another training run"):
        model.fit(batches(model), epochs=1, steps_per_epoch=1, verbose=0,
                  callbacks=[StarGANCheckpoint(config.model_save_dir, every_n_steps=1)])
    assert int(model.step.numpy()) == 0  # refused before the first step
    model.fit(batches(model), epochs=1, steps_per_epoch=2, verbose=0,
              callbacks=[StarGANCheckpoint(config.model_save_dir, every_n_steps=1)])
    with FolderLock(config.model_save_dir):  # free again once fit() has ended
        pass


def test_fit_with_a_full_sample_dir_saves_the_step_then_stops_naming_the_folder(demo_dataset, tmp_path, monkeypatch):
    """Without a StarGANCheckpoint the message says nothing was saved; fit() again with one saves the step first."""
    config = tiny_config(tmp_path, demo_dataset, num_iters=6)
    model = new_model(config)
    _, (test_paths, test_labels) = celeba_splits(config)
    samples = {"CelebA": first_images(test_paths, test_labels, config.celeba_crop_size, config.image_size, 2)}
    saver = StarGANCheckpoint(config.model_save_dir, every_n_steps=100)
    full_disk(monkeypatch, config.sample_dir)
    for step, callbacks, saved in (
            (2, [], "no StarGANCheckpoint among the callbacks: nothing saved"),
            (4, [saver], "saved " + re.escape(os.path.join(config.model_save_dir, "ckpt-4")) + " first")):
        with pytest.raises(TrainingError, match=rf"^cannot write into SampleGrid sample_dir "
                                                rf"{re.escape(config.sample_dir)} \(No space left on device\); "
                                                rf"training stopped at step {step} \({saved}\)\. Free space there"):
            model.fit(batches(model, start=int(model.step.numpy())), epochs=1, steps_per_epoch=4, verbose=0,
                      callbacks=[SampleGrid(config.sample_dir, samples, 2), *callbacks])
        assert int(model.step.numpy()) == step
        assert os.listdir(config.sample_dir) == []  # no <step>-images.png.tmp
    assert [os.path.basename(p) for p in saver.saved] == ["ckpt-4"]
    assert checkpoints.available_steps(config.model_save_dir) == [4]


def test_sigterm_stops_a_users_fit_after_the_running_step_with_its_checkpoint(demo_dataset, tmp_path, capsys):
    """The signal arrives during step 2: fit() saves step 2 and ends with TrainingStopped (exit status 143)."""
    assert threading.current_thread() is threading.main_thread()  # signals reach Python's handlers there only
    config = tiny_config(tmp_path, demo_dataset, num_iters=6)
    model = new_model(config)

    class Preempt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                signal.raise_signal(signal.SIGTERM)

    saver = StarGANCheckpoint(config.model_save_dir, every_n_steps=100)
    with pytest.raises(TrainingStopped) as stopped:
        model.fit(batches(model), epochs=1, steps_per_epoch=6, verbose=0, callbacks=[Preempt(), saver])
    assert (stopped.value.step, stopped.value.exit_code, int(model.step.numpy())) == (2, 143, 2)
    assert checkpoints.available_steps(config.model_save_dir) == [2]
    assert f"Stopped by SIGTERM at step 2 (saved {saver.saved[-1]})" in capsys.readouterr().out


def test_fit_with_a_full_model_save_dir_names_the_folder_and_leaves_no_tmp(demo_dataset, tmp_path, monkeypatch):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2)
    model = new_model(config)
    full_disk(monkeypatch, config.model_save_dir)
    with pytest.raises(TrainingError, match=r"^cannot write into StarGANCheckpoint model_save_dir "
                                            rf"{re.escape(config.model_save_dir)} \(No space left on device\) while "
                                            "writing config.json: nothing was trained"):
        model.fit(batches(model), epochs=1, steps_per_epoch=2, verbose=0,
                  callbacks=[StarGANCheckpoint(config.model_save_dir, every_n_steps=1)])
    assert int(model.step.numpy()) == 0
    assert sorted(os.listdir(config.model_save_dir)) == [".lock"]  # no config.json.tmp
    with FolderLock(config.model_save_dir):  # fit() let go of the folder
        pass
