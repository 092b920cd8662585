"""Official PyTorch checkpoints -> Keras, checked against a torch.nn.functional forward pass."""

import importlib
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stargan_tf import convert
from stargan_tf.checkpoints import restore_generator
from tests.helpers.in_process import run_main


def official_generator_state(c_dim, conv_dim=64, repeat_num=6, seed=0):
    """A state_dict with the official Generator's keys and shapes (IN buffers included), random values."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def conv(key, shape):
        state[f"{key}.weight"] = torch.randn(*shape, generator=g) / np.sqrt(np.prod(shape[1:]))

    def norm(key, dim):
        state[f"{key}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
        state[f"{key}.bias"] = 0.1 * torch.randn(dim, generator=g)
        state[f"{key}.running_mean"] = torch.zeros(dim)
        state[f"{key}.running_var"] = torch.ones(dim)
        state[f"{key}.num_batches_tracked"] = torch.tensor(0)

    d = conv_dim
    conv("main.0", (d, 3 + c_dim, 7, 7))
    norm("main.1", d)
    conv("main.3", (2 * d, d, 4, 4))
    norm("main.4", 2 * d)
    conv("main.6", (4 * d, 2 * d, 4, 4))
    norm("main.7", 4 * d)
    for i in range(repeat_num):
        conv(f"main.{9 + i}.main.0", (4 * d, 4 * d, 3, 3))
        norm(f"main.{9 + i}.main.1", 4 * d)
        conv(f"main.{9 + i}.main.3", (4 * d, 4 * d, 3, 3))
        norm(f"main.{9 + i}.main.4", 4 * d)
    up = 9 + repeat_num
    conv(f"main.{up}", (4 * d, 2 * d, 4, 4))  # ConvTranspose2d: [in, out, kh, kw]
    norm(f"main.{up + 1}", 2 * d)
    conv(f"main.{up + 3}", (2 * d, d, 4, 4))
    norm(f"main.{up + 4}", d)
    conv(f"main.{up + 6}", (3, d, 7, 7))
    return state


def official_discriminator_state(image_size, c_dim, conv_dim=64, repeat_num=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    state, dim_in, dim = {}, 3, conv_dim
    for i in range(repeat_num):
        state[f"main.{2 * i}.weight"] = torch.randn(dim, dim_in, 4, 4, generator=g) / np.sqrt(dim_in * 16)
        state[f"main.{2 * i}.bias"] = 0.1 * torch.randn(dim, generator=g)
        dim_in, dim = dim, dim * 2
    k = image_size // 2**repeat_num
    state["conv1.weight"] = torch.randn(1, dim_in, 3, 3, generator=g) / np.sqrt(dim_in * 9)
    state["conv2.weight"] = torch.randn(c_dim, dim_in, k, k, generator=g) / np.sqrt(dim_in * k * k)
    return state


def reference_generator(state, x, c, repeat_num):
    """The official Generator's forward pass, written with torch.nn.functional."""
    def norm(h, key):
        return F.instance_norm(h, weight=state[f"{key}.weight"], bias=state[f"{key}.bias"], eps=1e-5)

    c = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    h = torch.cat([x, c], dim=1)
    h = F.relu(norm(F.conv2d(h, state["main.0.weight"], padding=3), "main.1"))
    h = F.relu(norm(F.conv2d(h, state["main.3.weight"], stride=2, padding=1), "main.4"))
    h = F.relu(norm(F.conv2d(h, state["main.6.weight"], stride=2, padding=1), "main.7"))
    for i in range(repeat_num):
        key = f"main.{9 + i}.main"
        r = F.relu(norm(F.conv2d(h, state[f"{key}.0.weight"], padding=1), f"{key}.1"))
        h = h + norm(F.conv2d(r, state[f"{key}.3.weight"], padding=1), f"{key}.4")
    up = 9 + repeat_num
    h = F.relu(norm(F.conv_transpose2d(h, state[f"main.{up}.weight"], stride=2, padding=1), f"main.{up + 1}"))
    h = F.relu(norm(F.conv_transpose2d(h, state[f"main.{up + 3}.weight"], stride=2, padding=1), f"main.{up + 4}"))
    return torch.tanh(F.conv2d(h, state[f"main.{up + 6}.weight"], padding=3))


def reference_discriminator(state, x, repeat_num):
    h = x
    for i in range(repeat_num):
        h = F.leaky_relu(F.conv2d(h, state[f"main.{2 * i}.weight"], state[f"main.{2 * i}.bias"], stride=2, padding=1),
                         0.01)
    return F.conv2d(h, state["conv1.weight"], padding=1), F.conv2d(h, state["conv2.weight"]).flatten(1)


def save(state, path, legacy):
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return str(path)


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("size,legacy", [(128, False), (128, True), (256, False)])
def test_generator_matches_torch_reference(tmp_path, size, legacy):
    state = official_generator_state(c_dim=5)
    path = save(state, tmp_path / "200000-G.ckpt", legacy)
    model = convert.load_official_generator(path, size, 5)
    rng = np.random.default_rng(size)
    x = torch.tensor(rng.uniform(-1, 1, (2, 3, size, size)), dtype=torch.float32)
    c = torch.tensor([[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        expected = nhwc(reference_generator(state, x, c, 6))
    got = model([nhwc(x), c.numpy()]).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(expected).mean() > 0.05  # a real signal, not saturated zeros


@pytest.mark.parametrize("size,legacy", [(128, False), (128, True), (256, False)])
def test_discriminator_matches_torch_reference(tmp_path, size, legacy):
    state = official_discriminator_state(size, c_dim=5)
    path = save(state, tmp_path / "200000-D.ckpt", legacy)
    model = convert.load_official_discriminator(path, size, 5)
    x = torch.tensor(np.random.default_rng(size).uniform(-1, 1, (2, 3, size, size)), dtype=torch.float32)
    with torch.no_grad():
        src, cls = reference_discriminator(state, x, 6)
    got_src, got_cls = model(nhwc(x))
    scale = max(np.abs(src.numpy()).max(), np.abs(cls.numpy()).max())
    assert np.abs(got_src.numpy() - nhwc(src)).max() < 1e-4 * max(1.0, scale)
    assert np.abs(got_cls.numpy() - cls.numpy()).max() < 1e-4 * max(1.0, scale)
    assert got_src.shape == (2, size // 64, size // 64, 1)


def test_state_dict_without_running_stats_converts(tmp_path):
    state = {k: v for k, v in official_generator_state(5, 8, 1).items() if "running" not in k and "num_" not in k}
    model = convert.load_official_generator(save(state, tmp_path / "g.ckpt", False), 32, 5, conv_dim=8, repeat_num=1)
    np.testing.assert_allclose(model.get_layer("norm_in").get_weights()[0], state["main.1.weight"].numpy())


def test_conv_dim_and_repeat_num_are_inferred(tmp_path):
    path = save(official_generator_state(3, 8, 2), tmp_path / "g.ckpt", False)
    _, found = convert.generator_weights(convert.read_state_dict(path), path)
    assert found == (3, 8, 2)


def test_c_dim_mismatch_is_explained(tmp_path):
    path = save(official_generator_state(8, 8, 1), tmp_path / "g.ckpt", False)
    with pytest.raises(convert.CheckpointError, match="checkpoint has 3\\+8 input channels: c_dim is 8, not 5"):
        convert.load_official_generator(path, 32, 5, conv_dim=8, repeat_num=1)


def test_repeat_num_mismatch_is_explained(tmp_path):
    path = save(official_generator_state(5, 8, 2), tmp_path / "g.ckpt", False)
    with pytest.raises(convert.CheckpointError, match="2 residual blocks: g_repeat_num is 2, not 6"):
        convert.load_official_generator(path, 32, 5, conv_dim=8)


def test_discriminator_image_size_mismatch_is_explained(tmp_path):
    path = save(official_discriminator_state(128, 5, 8), tmp_path / "d.ckpt", False)
    with pytest.raises(convert.CheckpointError, match="image_size is 128, not 256"):
        convert.load_official_discriminator(path, 256, 5, conv_dim=8)


def test_discriminator_given_as_generator_is_named(tmp_path):
    path = save(official_discriminator_state(128, 5, 8), tmp_path / "200000-D.ckpt", False)
    with pytest.raises(convert.CheckpointError, match="looks like a discriminator checkpoint"):
        convert.load_official_generator(path, 128, 5)


def test_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.ckpt").write_text("hello")
    with pytest.raises(convert.CheckpointError, match="notes.ckpt is not a PyTorch state_dict file"):
        convert.read_state_dict(str(tmp_path / "notes.ckpt"))


def test_missing_key_is_named(tmp_path):
    state = official_generator_state(5, 8, 1)
    del state["main.4.bias"]
    with pytest.raises(convert.CheckpointError, match="missing 'main.4.bias'"):
        convert.load_official_generator(save(state, tmp_path / "g.ckpt", False), 32, 5, conv_dim=8, repeat_num=1)


COMMANDS = {"convert": "stargan_tf.convert", "export": "stargan_tf.export", "translate": "stargan_tf.translate",
            "train": "stargan_tf.train"}


def run_command(name, *args):
    """A command line's main in this process: torch and TensorFlow are imported once (the commands'
    own process starts are tested in test_train_cli and test_serving)."""
    return run_main(importlib.import_module(COMMANDS[name]).main, args)


def test_cli_convert_then_export_test_mode_and_fine_tune(tmp_path, demo_dataset):
    """A converted checkpoint works with export.py, translate, train.py --mode test and --resume_iters."""
    g_path = save(official_generator_state(5, 8, 2), tmp_path / "300-G.ckpt", True)
    d_path = save(official_discriminator_state(32, 5, 8, repeat_num=5), tmp_path / "300-D.ckpt", False)
    out = tmp_path / "converted"
    result = run_command("convert", "--official_generator", g_path, "--official_discriminator", d_path,
                 "--image_size", "32", "--model_save_dir", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == [".lock", "checkpoint", "ckpt-300.data-00000-of-00001", "ckpt-300.index",
                                       "config.json"]
    generator, config, step = restore_generator(str(out), "latest")
    assert step == 300 and config.g_repeat_num == 2 and config.d_repeat_num == 5
    reference = convert.load_official_generator(g_path, 32, 5, conv_dim=8, repeat_num=2)
    x, c = np.zeros((1, 32, 32, 3), np.float32), np.ones((1, 5), np.float32)
    np.testing.assert_allclose(generator([x, c]).numpy(), reference([x, c]).numpy(), atol=1e-6)

    result = run_command("export", "--model_save_dir", str(out), "--export_dir", str(tmp_path / "exports"))
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "exports" / "300" / "saved_model.pb")
    Image.new("RGB", (50, 40), (200, 120, 40)).save(tmp_path / "photo.jpg")
    result = run_command("translate", "--export_dir", str(tmp_path / "exports"), "--input",
                 str(tmp_path / "photo.jpg"), "--set", "Blond_Hair=1", "--output", str(tmp_path / "translated"))
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "translated" / "photo.png").size == (32, 32)

    image_dir, attr_path = demo_dataset
    common = ["--image_size", "32", "--g_conv_dim", "8", "--g_repeat_num", "2", "--d_conv_dim", "8",
              "--d_repeat_num", "5", "--celeba_image_dir", image_dir, "--attr_path", attr_path, "--batch_size", "4",
              "--test_size", "4", "--model_save_dir", str(out), "--result_dir", str(tmp_path / "results"),
              "--sample_dir", str(tmp_path / "samples"), "--log_dir", str(tmp_path / "logs")]
    result = run_command("train", "--mode", "test", "--test_iters", "300", *common)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "results") == ["1-images.png"]
    result = run_command("train", "--resume_iters", "300", "--num_iters", "302", "--model_save_step", "302",
                 "--log_step", "1", *common)
    assert result.returncode == 0, result.stderr
    assert "302/302" in result.stdout and os.path.exists(out / "ckpt-302.index")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)


@pytest.mark.parametrize("obj,holds", [
    (Net(), r"it holds Python objects \(\S*test_convert.Net\)"),
    ({"main.0.weight": np.zeros(3)}, r"it holds Python objects \(numpy\.\S+\)"),
    ({"G": {"main.0.weight": torch.zeros(3)}, "step": 3}, r"\(entries that are not tensors: G, step\)"),
])
def test_file_that_is_not_a_plain_state_dict_says_what_is_accepted(tmp_path, obj, holds):
    """Never torch's advice to load with weights_only=False (it runs the file's code), and never cut mid-sentence."""
    torch.save(obj, tmp_path / "model.pt")
    with pytest.raises(convert.CheckpointError) as caught:
        convert.read_state_dict(str(tmp_path / "model.pt"))
    message = str(caught.value)
    assert re.match(rf"\S+model.pt is not a plain state dict(: | ){holds}", message), message
    assert message.endswith("The converter accepts a file of torch.save(model.state_dict(), path): a mapping of "
                            "parameter names to tensors, as the official solver writes N-G.ckpt and N-D.ckpt")
    assert "weights_only" not in message
