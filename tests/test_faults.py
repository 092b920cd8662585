"""Faults during training: a second run, signals, torn checkpoints, broken images, NaN, unusable folders."""

import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_tf import StarGAN, StarGANCheckpoint, checkpoints, data, export
from stargan_tf.config import load_config, parse_config
from stargan_tf.lock import FolderInUse, FolderLock
from stargan_tf.solver import prepare_run
from stargan_tf.streams import TrainingStreams
from stargan_tf.training import TrainingError
from tests.helpers.configs import TINY, tiny_config, trained
from tests.helpers.faults import class_folders, truncate_a_file_of_batch
from tests.helpers.in_process import run_main
from tests.helpers.workers import env, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- the folder lock
def hold_lock(folder, tmp_path):
    """A second process that takes the folder's lock and sleeps: (process, log path)."""
    log = tmp_path / "holder.log"
    code = ("import sys, time; from stargan_tf.lock import FolderLock; FolderLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, folder], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env())
    wait_for(proc, log, "locked", timeout=60)
    return proc


def test_second_run_on_a_locked_folder_is_refused_naming_the_holder(tmp_path, demo_dataset):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2)
    holder = hold_lock(config.model_save_dir, tmp_path)
    try:
        with pytest.raises(FolderInUse, match=rf"--model_save_dir .* is in use by another training run \(pid "
                                              rf"{holder.pid} on "):
            trained(config)
        assert checkpoints.available_steps(config.model_save_dir) == []
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: the stale lock file does not block the next run.
    assert os.path.exists(os.path.join(config.model_save_dir, ".lock"))
    _, last = trained(config)
    assert last == 2
    FolderLock(config.model_save_dir).acquire().release()  # released when training ended


# ---------------------------------------------------------------- SIGINT / SIGTERM
SIGNAL_RUN = ["--dataset", "Demo", "--num_iters", "100000", "--num_iters_decay", "0", "--log_step", "1",
              "--sample_step", "100000", "--model_save_step", "100000", "--seed", "5", "--demo_images", "40",
              "--test_size", "8", "--g_ema_decay", "0.9"] + [f"--{k}={v}" for k, v in TINY.items()]


def signal_run_config(out):
    argv = SIGNAL_RUN + [f"--demo_dir={out / 'demo'}", f"--model_save_dir={out / 'models'}",
                         f"--sample_dir={out / 'samples'}", f"--log_dir={out / 'logs'}", f"--result_dir={out / 'r'}"]
    return argv, parse_config(argv)


def stop_train_py(argv, out, signum, after_step):
    """Run train.py with `argv`, logging into `out`, and send it `signum` once it has logged `after_step`; check that
    it saved the step it stopped at and said how to continue; returns that step."""
    log, err_log = out / f"{signal.Signals(signum).name}.log", out / f"{signal.Signals(signum).name}.err"
    proc = subprocess.Popen([sys.executable, "train.py", *argv], cwd=ROOT, env=env(), stdout=open(log, "w"),
                            stderr=open(err_log, "w"))
    try:
        wait_for(proc, log, f"] {after_step}/100000")
        proc.send_signal(signum)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text, err = log.read_text(), err_log.read_text()
    assert code == 128 + signum
    assert "Traceback" not in err and "Traceback" not in text
    model_save_dir = parse_config(argv).model_save_dir
    step = checkpoints.available_steps(model_save_dir)[-1]
    assert step >= after_step
    assert f"Stopped by {signal.Signals(signum).name} at step {step} (saved " in text
    assert "Continue with --resume_iters latest (and the same options)" in text
    reader = tf.train.load_checkpoint(checkpoints.checkpoint_path(model_save_dir, step))
    iterations = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                  if k.startswith("d_optimizer/") and "iter" in k]
    assert [int(i) for i in iterations] == [step]  # the optimizer state matches the checkpoint's step
    return step


def test_signals_save_the_step_they_stopped_at_and_resume_is_exact(tmp_path):
    """SIGTERM (preemption) stops a run; train.py --resume_iters latest continues it until SIGINT (Ctrl-C) stops it
    again. Each saves the step it stopped at, and the second save equals a run straight to that step."""
    argv, config = signal_run_config(tmp_path)
    first = stop_train_py(argv, tmp_path, signal.SIGTERM, 6)
    second = stop_train_py(argv + ["--resume_iters", "latest"], tmp_path, signal.SIGINT, first + 3)
    straight = tmp_path / "straight"
    trained(config, num_iters=second, model_save_step=second, model_save_dir=str(straight),
            sample_dir=str(tmp_path / "s2"), log_dir=str(tmp_path / "l2"))
    resumed = tf.train.load_checkpoint(checkpoints.checkpoint_path(config.model_save_dir, second))
    reference = tf.train.load_checkpoint(checkpoints.checkpoint_path(str(straight), second))
    names = sorted(resumed.get_variable_to_shape_map())
    assert names == sorted(reference.get_variable_to_shape_map())
    # G, D, the moving average of G and both optimizers' moments
    assert sum(name.startswith(("g_optimizer/", "d_optimizer/", "generator_ema/")) for name in names) == 152
    for name in names:
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH":
            np.testing.assert_allclose(resumed.get_tensor(name), reference.get_tensor(name), rtol=1e-5, atol=1e-6,
                                       err_msg=name)


# ---------------------------------------------------------------- resume and the seed
def test_resume_reuses_the_recorded_seed_and_refuses_another(tmp_path, demo_dataset):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2, seed=None)
    trained(config)
    seed = load_config(config.model_save_dir).seed
    resumed, last = trained(config, num_iters=4, resume_iters="latest")
    assert (last, resumed.config.seed, load_config(config.model_save_dir).seed) == (4, seed, seed)
    with pytest.raises(ValueError, match=rf"--seed {seed + 1} differs from the seed {seed} recorded in"):
        trained(config, num_iters=6, resume_iters="latest", seed=seed + 1)


# ---------------------------------------------------------------- torn checkpoints (two_checkpoints: conftest.py)
def test_latest_skips_a_torn_index_with_a_warning(two_checkpoints, capsys):
    folder = two_checkpoints.model_save_dir
    open(os.path.join(folder, "ckpt-4.index"), "w").close()  # what kill -9 during the index merge leaves
    assert checkpoints.checkpoint_path(folder, "latest") == os.path.join(folder, "ckpt-2")
    assert "skipping unreadable checkpoint " + os.path.join(folder, "ckpt-4.index") in capsys.readouterr().err
    with pytest.raises(checkpoints.CheckpointError, match=r"step 4 cannot be read: .*ckpt-4.index"):
        checkpoints.checkpoint_path(folder, 4)


def test_resume_after_a_torn_save_cleans_temp_folders_and_continues(two_checkpoints, capsys):
    folder = two_checkpoints.model_save_dir
    open(os.path.join(folder, "ckpt-4.index"), "w").close()
    os.makedirs(os.path.join(folder, "ckpt-4_temp"))
    _, last = trained(two_checkpoints, num_iters=6, resume_iters="latest")
    assert last == 6
    assert not os.path.exists(os.path.join(folder, "ckpt-4_temp"))
    out = capsys.readouterr().out
    assert "Removed " + os.path.join(folder, "ckpt-4_temp") in out
    assert "Loading the trained models from " + os.path.join(folder, "ckpt-2") in out


def test_export_names_a_truncated_checkpoint(two_checkpoints, tmp_path):
    data_file = os.path.join(two_checkpoints.model_save_dir, "ckpt-4.data-00000-of-00001")
    with open(data_file, "r+b") as f:
        f.truncate(os.path.getsize(data_file) // 2)
    result = run_main(export.main, ["--model_save_dir", two_checkpoints.model_save_dir,
                                    "--export_dir", str(tmp_path / "export")])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "checkpoint " + os.path.join(two_checkpoints.model_save_dir, "ckpt-4") + " could not be read" in \
        result.stderr


# ---------------------------------------------------------------- broken images
@pytest.fixture()
def broken_folder_config(tmp_path):
    class_folders(tmp_path / "data")
    config = tiny_config(tmp_path, dataset="RaFD", rafd_image_dir=str(tmp_path / "data"), rafd_crop_size=40,
                         num_iters=6, model_save_step=100, num_iters_decay=0)
    return config


def test_a_corrupt_image_stops_the_run_naming_it_after_saving(broken_folder_config):
    victim = truncate_a_file_of_batch(broken_folder_config, 2)
    with pytest.raises(data.DataError, match=rf"{victim}: cannot be decoded .*training stopped at step 2 \(saved "):
        trained(broken_folder_config)
    assert checkpoints.available_steps(broken_folder_config.model_save_dir) == [2]


def test_a_users_fit_on_training_streams_names_a_corrupt_image_after_saving(broken_folder_config):
    """fit() outside train.py stops as train.py does: the file named, the step saved by its StarGANCheckpoint."""
    victim = truncate_a_file_of_batch(broken_folder_config, 2)
    config, sources = prepare_run(broken_folder_config)
    keras.utils.set_random_seed(config.seed)
    model = StarGAN(config)
    model.compile()
    saver = StarGANCheckpoint(config.model_save_dir, every_n_steps=100)
    saved = re.escape(os.path.join(config.model_save_dir, "ckpt-2"))
    with pytest.raises(data.DataError, match=rf"^{victim}: cannot be decoded .*training stopped at step 2 \(saved "
                                             rf"{saved} first\)"):
        model.fit(TrainingStreams(config, model.layout, sources), epochs=1, steps_per_epoch=6, verbose=0,
                  callbacks=[saver])
    assert checkpoints.available_steps(config.model_save_dir) == [2]


def test_skip_bad_images_skips_and_counts(broken_folder_config, capsys):
    victim = truncate_a_file_of_batch(broken_folder_config, 2)
    solver, last = trained(broken_folder_config, skip_bad_images=True)
    assert last == 6
    assert solver.skipped_images == [victim]
    assert f"Skipped {victim}: cannot be decoded" in capsys.readouterr().out


# ---------------------------------------------------------------- folders, options, NaN
def test_unwritable_sample_dir_fails_before_the_first_step(tmp_path, demo_dataset):
    (tmp_path / "a_file").write_text("x")
    config = tiny_config(tmp_path, demo_dataset, num_iters=2, sample_dir=str(tmp_path / "a_file" / "samples"))
    with pytest.raises(ValueError, match=r"--sample_dir .*a_file/samples: cannot write there"):
        trained(config)
    assert checkpoints.available_steps(config.model_save_dir) == []


@pytest.mark.parametrize("args, message", [
    (["--lambda_gp", "nan"], "--lambda_gp must be a finite number >= 0, got nan"),
    (["--lambda_cls", "-1"], "--lambda_cls must be a finite number >= 0, got -1.0"),
    (["--g_lr", "-0.0001"], "--g_lr must be a finite number > 0, got -0.0001"),
    (["--d_lr", "inf"], "--d_lr must be a finite number > 0, got inf"),
    (["--beta2", "1"], "--beta2 must lie in [0, 1), got 1.0"),
])
def test_option_values_are_checked_before_training(args, message, capsys):
    with pytest.raises(SystemExit):
        parse_config(args)
    assert message in capsys.readouterr().err


def test_non_finite_loss_stops_naming_the_step_and_keeps_good_checkpoints(tmp_path, demo_dataset):
    config = tiny_config(tmp_path, demo_dataset, num_iters=50, model_save_step=1, d_lr=1e30, g_lr=1e30,
                         num_iters_decay=0)
    with pytest.raises(TrainingError, match=r"step (\d+): .* = (nan|inf).*training stopped without saving") as info:
        trained(config)
    failed = int(info.value.args[0].split(":")[0].split()[1])
    steps = checkpoints.available_steps(config.model_save_dir)
    assert steps == list(range(1, failed))
    for step in steps:
        reader = tf.train.load_checkpoint(os.path.join(config.model_save_dir, f"ckpt-{step}"))
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                assert np.all(np.isfinite(value)), (step, name)


# ---------------------------------------------------------------- class folders and attribute files
def test_symlink_loops_other_classes_and_hidden_files_are_not_read(tmp_path):
    class_folders(tmp_path, per_class=2)
    os.symlink("..", tmp_path / "red" / "loop")
    os.symlink(tmp_path / "blue", tmp_path / "red" / "blue_again")
    os.symlink(tmp_path / "blue" / "0.jpg", tmp_path / "red" / "borrowed.jpg")
    (tmp_path / "red" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    os.makedirs(tmp_path / "red" / ".thumbnails")
    Image.new("RGB", (8, 8)).save(tmp_path / "red" / ".thumbnails" / "t.jpg")
    os.makedirs(tmp_path / "shared")
    Image.new("RGB", (8, 8)).save(tmp_path / "shared" / "s.jpg")
    os.symlink(tmp_path / "shared", tmp_path / "red" / "linked")
    os.symlink(tmp_path / "shared", tmp_path / "red" / "linked_twice")
    paths, labels, classes = data.read_class_folders(str(tmp_path / "."))
    assert classes == ["blue", "red", "shared"]
    red = [os.path.relpath(p, tmp_path) for p, y in zip(paths, labels, strict=True) if y[1]]
    assert red == ["red/0.jpg", "red/1.jpg"]


def test_symlinked_folder_outside_the_root_is_read_once(tmp_path):
    class_folders(tmp_path / "root", per_class=1)
    os.makedirs(tmp_path / "extra")
    Image.new("RGB", (8, 8)).save(tmp_path / "extra" / "e.jpg")
    os.symlink(tmp_path / "extra", tmp_path / "root" / "red" / "extra")
    os.symlink(tmp_path / "extra", tmp_path / "root" / "red" / "extra_again")
    paths, _, _ = data.read_class_folders(str(tmp_path / "root"))
    assert [os.path.relpath(p, tmp_path / "root") for p in paths] == ["blue/0.jpg", "red/0.jpg", "red/extra/e.jpg"]


def test_attribute_file_in_latin1_is_named_with_its_line(tmp_path):
    path = tmp_path / "attrs.txt"
    path.write_bytes("2\nMale Young\na.jpg 1 -1\nb\xe9.jpg -1 1\n".encode("latin-1"))
    with pytest.raises(data.DataError, match=rf"{path}, line 4: not UTF-8 text \(byte 0xe9\)"):
        data.read_attribute_file(str(path), ["Male"])


def test_attribute_file_with_a_byte_order_mark_parses(tmp_path):
    path = tmp_path / "attrs.txt"
    path.write_bytes(b"\xef\xbb\xbf2\r\nMale Young\r\na.jpg 1 -1\r\nb.jpg -1 1\r\n")
    names, labels, all_names = data.read_attribute_file(str(path), ["Young"])
    assert (names, labels.tolist(), all_names) == (["a.jpg", "b.jpg"], [[0.0], [1.0]], ["Male", "Young"])
