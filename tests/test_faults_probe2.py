"""Faults of the second probe (issue 20): full disks, resuming an older step, config.json that disagrees with its
checkpoint or has wrong types, a precision switch at resume, a dead peer, an undecodable training image."""

import dataclasses
import errno
import json
import os
import re

import pytest
import tensorflow as tf

from stargan_tf import checkpoints, distribute, evaluation, export, train, translate
from stargan_tf.config import load_config, parse_config
from stargan_tf.data import DataError
from stargan_tf.solver import Solver
from stargan_tf.training import TrainingError
from tests.helpers.configs import tiny_config, trained
from tests.helpers.faults import class_folders, full_disk, truncate_a_file_of_batch


def edit_config(folder, change):
    path = os.path.join(folder, "config.json")
    values = json.load(open(path))
    change(values)
    with open(path, "w") as f:
        json.dump(values, f)
    return path


# ---------------------------------------------------------------- 1, 11: a full disk
@pytest.mark.parametrize("num_iters", [6, 2])  # a sample in the middle of the run, and at its last step
def test_full_sample_dir_saves_the_step_then_stops_naming_the_folder(tmp_path, demo_dataset, monkeypatch, num_iters):
    config = tiny_config(tmp_path, demo_dataset, num_iters=num_iters, sample_step=2, model_save_step=100)
    full_disk(monkeypatch, config.sample_dir)
    saved = os.path.join(config.model_save_dir, "ckpt-2")
    with pytest.raises(TrainingError, match=rf"^cannot write into --sample_dir {re.escape(config.sample_dir)} \(No "
                                            rf"space left on device\); training stopped at step 2 \(saved "
                                            rf"{re.escape(saved)} first\)\. Free space there .*--resume_iters latest"):
        trained(config)
    assert checkpoints.available_steps(config.model_save_dir) == [2]
    assert os.listdir(config.sample_dir) == []  # no 0-byte 2-images.png.tmp


def test_full_disk_at_resume_names_the_folder_and_leaves_no_tmp(tmp_path, demo_dataset, monkeypatch):
    config = tiny_config(tmp_path, demo_dataset, num_iters=2)
    trained(config)
    before = sorted(os.listdir(config.model_save_dir))
    stored = open(os.path.join(config.model_save_dir, "config.json")).read()
    full_disk(monkeypatch, config.model_save_dir)
    with pytest.raises(TrainingError, match=rf"^cannot write into --model_save_dir {re.escape(config.model_save_dir)} "
                                            r"\(No space left on device\) while writing config.json: nothing was "
                                            "trained and no file was changed"):
        trained(config, num_iters=4, resume_iters="latest")
    assert sorted(os.listdir(config.model_save_dir)) == before  # no config.json.tmp
    assert open(os.path.join(config.model_save_dir, "config.json")).read() == stored


def full_log_dir(monkeypatch, tmp_path, failing):
    """Make the TensorBoard writer's `flush` (where its queued writes reach the disk) or `tf.summary.scalar` raise
    the OpError of a full disk."""
    def fail(*args, **kwargs):
        raise tf.errors.UnknownError(None, None, "Failed to flush 3 events to /logs/events.out.tfevents: No space "
                                                 "left on device")

    if failing == "flush":
        monkeypatch.setattr(type(tf.summary.create_file_writer(str(tmp_path / "probe"))), "flush", fail)
    else:
        monkeypatch.setattr(tf.summary, "scalar", fail)


@pytest.mark.parametrize("failing,num_iters,log_step", [
    ("flush", 6, 2),  # the flush of the losses of step 2
    ("flush", 2, 100),  # only the final flush, after the last step
    ("scalar", 6, 2),  # the write itself
])
def test_full_log_dir_saves_the_step_then_stops_naming_the_folder(tmp_path, demo_dataset, monkeypatch, failing,
                                                                   num_iters, log_step):
    config = tiny_config(tmp_path, demo_dataset, num_iters=num_iters, log_step=log_step, sample_step=100,
                         model_save_step=100, use_tensorboard=True)
    full_log_dir(monkeypatch, tmp_path, failing)
    saved = os.path.join(config.model_save_dir, "ckpt-2")
    with pytest.raises(TrainingError, match=rf"^cannot write into --log_dir {re.escape(config.log_dir)} \(Failed to "
                                            r"flush 3 events .*No space left on device\); training stopped at step 2 "
                                            rf"\(saved {re.escape(saved)} first\)\. Free space there"):
        trained(config)
    assert checkpoints.available_steps(config.model_save_dir) == [2]


def test_a_failed_flush_after_an_error_does_not_replace_it(tmp_path, demo_dataset, monkeypatch):
    config = tiny_config(tmp_path, demo_dataset, num_iters=6, log_step=100, sample_step=2, model_save_step=100,
                         use_tensorboard=True)
    full_log_dir(monkeypatch, tmp_path, "flush")
    full_disk(monkeypatch, config.sample_dir)
    with pytest.raises(TrainingError, match=rf"^cannot write into --sample_dir {re.escape(config.sample_dir)} \(No "
                                            r"space left on device\); training stopped at step 2"):
        trained(config)


def test_an_unexpected_file_error_names_the_option_and_the_file(tmp_path, demo_dataset, monkeypatch, capsys):
    config = tiny_config(tmp_path, demo_dataset)
    path = os.path.join(config.model_save_dir, "checkpoint")

    def full(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(Solver, "train", full)
    monkeypatch.setattr(distribute, "make_strategy", lambda *args: tf.distribute.get_strategy())
    argv = [f"--{k}={getattr(config, k)}" for k in ("celeba_image_dir", "attr_path", "model_save_dir", "sample_dir",
                                                     "log_dir", "image_size", "d_repeat_num", "test_size")]
    assert train.main(argv) == 1
    assert capsys.readouterr().err == (f"error: training stopped: --model_save_dir {config.model_save_dir}: {path}: "
                                       "No space left on device\n")


# ---------------------------------------------------------------- 2: resuming an older step
def test_resuming_an_older_step_refuses_to_overwrite_later_checkpoints(two_checkpoints):
    folder = two_checkpoints.model_save_dir
    later = os.path.join(folder, "ckpt-4.data-00000-of-00001")
    written = os.stat(later).st_mtime_ns
    with pytest.raises(ValueError, match=rf"^--resume_iters 2 continues from step 2, but --model_save_dir "
                                         rf"{re.escape(folder)} holds later checkpoints \(steps 4\) that this run "
                                         r"would overwrite\. To keep them, copy config\.json and the ckpt-2\.\* files "
                                         r"into a new --model_save_dir and resume there \(in this folder a later "
                                         r"--resume_iters latest would pick up those newer checkpoints, not this "
                                         r"run's\); or pass --overwrite_later_checkpoints True to replace them$"):
        trained(two_checkpoints, resume_iters=2, num_iters=4)
    assert os.stat(later).st_mtime_ns == written
    assert parse_config(["--overwrite_later_checkpoints", "True"]).overwrite_later_checkpoints is True
    _, last = trained(two_checkpoints, resume_iters=2, num_iters=4, overwrite_later_checkpoints=True)
    assert last == 4
    assert os.stat(later).st_mtime_ns != written


# ---------------------------------------------------------------- 3, 9: config.json against the checkpoint
def model_commands(config, tmp_path):
    """(name, main, argv) of every command that loads G from --model_save_dir."""
    photo = tmp_path / "photo.png"
    tf.io.write_file(str(photo), tf.io.encode_png(tf.zeros([32, 32, 3], tf.uint8)))
    folder = config.model_save_dir
    return [("export", export.main, ["--model_save_dir", folder, "--export_dir", str(tmp_path / "export")]),
            ("translate", translate.main, ["--model_save_dir", folder, "--input", str(photo), "--output",
                                           str(tmp_path / "translated")]),
            ("evaluation", evaluation.main, ["--model_save_dir", folder])]


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(image_size=64), r'"image_size" is 64, but the checkpoint \S+ckpt-4 was trained with 32 '
                                        r"\(D's classification kernel is 1x1 after 5 halvings\)"),
    (lambda v: v.pop("image_size"), r'"image_size" is missing \(read as 128\), but the checkpoint \S+ was trained '
                                    "with 32"),
    (lambda v: v.update(g_conv_dim=16), r'"g_conv_dim" is 16, but the checkpoint \S+ was trained with 8 '
                                        r"\(G's first kernel has 8 filters\)"),
    (lambda v: v.update(d_conv_dim=4), r'"d_conv_dim" is 4, but the checkpoint \S+ was trained with 8'),
    (lambda v: v.update(c_dim=4, selected_attrs=v["selected_attrs"][:4]),
     r'"c_dim" is 4, but the checkpoint \S+ was trained with 5'),
])
def test_config_that_disagrees_with_the_checkpoint_is_refused(two_checkpoints, tmp_path, capsys, change, message):
    path = edit_config(two_checkpoints.model_save_dir, change)
    for name, main, argv in model_commands(two_checkpoints, tmp_path):
        assert main(argv) == 2, name
        assert re.search(rf"^error: {re.escape(path)}: {message}", capsys.readouterr().err, re.M), name
    assert not os.path.exists(tmp_path / "export")
    # Test mode with the options config.json holds (other options would be refused as a different configuration).
    tested = dataclasses.replace(load_config(two_checkpoints.model_save_dir), mode="test", test_iters=4,
                                 model_save_dir=two_checkpoints.model_save_dir, result_dir=str(tmp_path / "results"))
    with pytest.raises(ValueError, match=rf"^{re.escape(path)}: {message}"):
        Solver(tested).test()


@pytest.mark.parametrize("values, message", [
    ('"image_size": "32"', r'"image_size" must be an integer, got "32" \(str\)'),
    ('"image_size": null', r'"image_size" must be an integer, got null \(NoneType\)'),
    ('"selected_attrs": "Male"', r'"selected_attrs" must be a list of strings, got "Male" \(str\)'),
    (None, r'expected a JSON object of options .*, got \[\] \(list\)'),
])
def test_config_with_wrong_types_is_named_with_its_key(two_checkpoints, tmp_path, capsys, values, message):
    path = os.path.join(two_checkpoints.model_save_dir, "config.json")
    if values is None:
        open(path, "w").write("[]")
    else:
        edit_config(two_checkpoints.model_save_dir, lambda v: v.update(json.loads("{" + values + "}")))
    for name, main, argv in model_commands(two_checkpoints, tmp_path):
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert re.search(rf"^error: {re.escape(path)}: {message}", err, re.M), (name, err)
        assert "Traceback" not in err


def test_resume_message_shows_the_types_that_differ(two_checkpoints):
    edit_config(two_checkpoints.model_save_dir, lambda v: v.update(image_size="32"))
    with pytest.raises(ValueError, match=r'was written by a different configuration: --image_size "32" \(str, '
                                         r"stored\) vs 32 \(int, given\)$"):
        trained(two_checkpoints, num_iters=6, resume_iters="latest")


def test_resume_message_says_a_key_is_missing(two_checkpoints):
    edit_config(two_checkpoints.model_save_dir, lambda v: v.pop("image_size"))
    with pytest.raises(ValueError, match=r"was written by a different configuration: --image_size missing \(read as "
                                         r"128\) vs 32 \(given\)$"):
        trained(two_checkpoints, num_iters=6, resume_iters="latest")


# ---------------------------------------------------------------- 10: the precision at resume
def test_resume_in_another_precision_says_what_differs_and_how_to_resume(two_checkpoints, tmp_path, demo_dataset):
    path = os.path.join(two_checkpoints.model_save_dir, "ckpt-4")
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} was trained without fp16 \(--mixed_precision off\): "
                                         r"its optimizers hold no loss-scale state, which this run's fp16 needs\. The "
                                         r"checkpoint is fine: resume with --mixed_precision off$"):
        trained(two_checkpoints, num_iters=6, resume_iters="latest", mixed_precision="fp16")
    fp16 = tiny_config(tmp_path / "fp16", demo_dataset, num_iters=2, mixed_precision="fp16")
    trained(fp16)
    path = os.path.join(fp16.model_save_dir, "ckpt-2")
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} was trained with --mixed_precision fp16: its "
                                         r"optimizers hold fp16's loss-scale state, which this run \(precision off\) "
                                         "has none of. The checkpoint is fine: resume with --mixed_precision fp16$"):
        trained(fp16, num_iters=4, resume_iters="latest", mixed_precision="off")


# ---------------------------------------------------------------- 12: a dead peer
DEAD_PEER = """Graph execution error:

Detected at node fused_adam_1/CollectiveReduceV2 defined at (most recent call last):
  File "/work/main/stargan_tf/training.py", line 256, in step

Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy \
(stopped sending heartbeats):
/job:worker/replica:0/task:1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) to \
debug further.
\t [[{{node fused_adam_1/CollectiveReduceV2}}]] [Op:__inference_step_4301]"""  # worker 0's error when worker 1 died


def test_a_dead_peer_is_named_with_how_to_resume(tmp_path, demo_dataset, monkeypatch, capsys):
    """train.py's message for the error the survivor of a killed worker gets (tests/test_distribute.py kills one)."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]},
                                                "task": {"type": "worker", "index": 0}}))

    def dead_peer(self):
        raise tf.errors.UnavailableError(None, None, DEAD_PEER)

    monkeypatch.setattr(Solver, "train", dead_peer)
    monkeypatch.setattr(distribute, "make_strategy", lambda *args: tf.distribute.get_strategy())
    config = tiny_config(tmp_path, demo_dataset)
    argv = [f"--{k}={getattr(config, k)}" for k in ("celeba_image_dir", "attr_path", "model_save_dir", "sample_dir",
                                                     "log_dir", "image_size", "d_repeat_num", "test_size")]
    assert train.main(argv) == 1
    assert capsys.readouterr().err == (
        "error: training stopped: worker 1 (127.0.0.1:2002) stopped responding (UnavailableError: the collective "
        "between the workers failed; nothing was saved since the last checkpoint). Restart every worker with "
        "--resume_iters latest (and the same options)\n")


# ---------------------------------------------------------------- 16: an image that is not one
def test_a_file_that_is_no_image_is_named_in_a_sentence(tmp_path):
    class_folders(tmp_path / "data")
    config = tiny_config(tmp_path, dataset="RaFD", rafd_image_dir=str(tmp_path / "data"), rafd_crop_size=40,
                         num_iters=6, model_save_step=100, num_iters_decay=0)
    victim = truncate_a_file_of_batch(config, 2)
    open(victim, "wb").write(b"hello, not an image")
    with pytest.raises(DataError) as info:
        trained(config)
    message = str(info.value)
    assert message.startswith(f"{victim}: cannot be decoded (not a JPEG, PNG, GIF or BMP image: {victim} first bytes "
                              "(hex): 68 65 6c 6c 6f 2c 20 6e); training stopped at step 2"), message
    assert "tf.Tensor" not in message
