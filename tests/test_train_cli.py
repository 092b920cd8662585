"""train.py's command line: official flags accepted, bad options and data named in one line."""

import os
import subprocess
import sys

import pytest

from stargan_tf import train as train_cli
from stargan_tf.config import StarGANConfig, build_parser
from tests.helpers.in_process import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_process(*args):
    """train.py in a process of its own, as a user runs it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "train.py", *args], capture_output=True, text=True, cwd=ROOT, env=env)


def train(*args):
    """train.py's main in this process: its exit code and what it printed."""
    return run_main(train_cli.main, args)


def test_official_command_line_parses_with_official_defaults():
    args = build_parser().parse_args([
        "--mode", "train", "--dataset", "CelebA", "--image_size", "128", "--c_dim", "5", "--sample_dir", "s",
        "--log_dir", "l", "--model_save_dir", "m", "--result_dir", "r", "--selected_attrs", "Black_Hair",
        "Blond_Hair", "Brown_Hair", "Male", "Young", "--use_tensorboard", "False"])
    config = StarGANConfig(**vars(args)).validate()
    assert (config.batch_size, config.num_iters, config.num_iters_decay) == (16, 200000, 100000)
    assert (config.n_critic, config.g_ema_decay, config.random_flip) == (2, 0.999, True)  # measured, see README
    assert (config.g_lr, config.d_lr, config.beta1, config.beta2) == (1e-4, 1e-4, 0.5, 0.999)
    assert (config.lambda_cls, config.lambda_rec, config.lambda_gp) == (1, 10, 10)
    assert (config.log_step, config.sample_step, config.model_save_step, config.lr_update_step) == (10, 1000, 10000,
                                                                                                   1000)
    assert config.use_tensorboard is False and config.c_dim == 5


def test_unknown_attribute_lists_valid_names(demo_dataset, tmp_path):
    result = train_process("--celeba_image_dir", demo_dataset[0], "--attr_path", demo_dataset[1], "--selected_attrs",
                           "Bald", "--image_size", "32", "--d_repeat_num", "5", "--model_save_dir", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "error: --selected_attrs: Bald not in" in result.stderr
    assert "valid names: Black_Hair Blond_Hair Brown_Hair Male Young" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--image_size", "32"], "image_size 32 must be a multiple of 2**d_repeat_num = 64"),
    (["--c_dim", "4"], "--c_dim 4 does not match the 5 --selected_attrs"),
    (["--image_size", "30", "--d_repeat_num", "1"], "image_size must be a multiple of 4"),
])
def test_bad_options_fail_before_any_work(args, message):
    result = train(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_quality_options_parse_and_reach_the_config():
    args = build_parser().parse_args(["--random_flip", "False", "--g_ema_decay", "0.999", "--target_sampling", "other",
                                      "--lambda_id", "2.5", "--eval_step", "500", "--eval_images", "300",
                                      "--eval_dir", "held_out"])
    config = StarGANConfig(**vars(args))
    assert config.random_flip is False and config.g_ema_decay == 0.999 and config.target_sampling == "other"
    assert (config.lambda_id, config.eval_step, config.eval_images, config.eval_dir) == (2.5, 500, 300, "held_out")
    assert '"random_flip": false' in config.to_json()


@pytest.mark.parametrize("args,message", [
    (["--g_ema_decay", "1"], "--g_ema_decay must lie in [0, 1)"),
    (["--target_sampling", "random"], "argument --target_sampling: invalid choice: 'random'"),
    (["--random_flip", "maybe"], "argument --random_flip: expected true or false, got 'maybe'"),
    (["--eval_step", "-1"], "--eval_step must be 0 (off) or more, got -1"),
])
def test_bad_quality_options_name_the_option(args, message):
    result = train("--image_size", "64", *args)
    assert result.returncode == 2
    assert message in result.stderr
