"""tf.distribute: a mirrored step equals a one-device step; two workers on localhost agree and stop together on
SIGTERM; a dead worker ends the run with an error instead of a hang."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from stargan_tf import checkpoints, distribute
from tests.helpers.workers import HELPERS, default_pools_env, env, start_workers, stop, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Unit roundoffs of the two compute precisions, and the longest sum of a gradient in the test: a kernel gradient of
# G's full-resolution layers adds one product per image and pixel, 8 x 32 x 32 of them.
FLOAT32_ROUNDOFF, BFLOAT16_ROUNDOFF = 2.0**-24, 2.0**-8
LONGEST_SUM = 8 * 32 * 32


def test_mirrored_step_equals_single_device_step():
    """Mirrored over two replicas, each gradient is the same sum as on one device, added in another order. By the
    bound for recursive summation (Higham, Accuracy and Stability of Numerical Algorithms, 4.2) the sums then
    differ by at most n * u relative for n terms of unit roundoff u: the float32 tolerance. (Higham's bound is
    relative to the sum of the terms' sizes, so a gradient whose terms cancel can go further: with one intra-op
    thread TensorFlow's own kernels did, hence the default pools, tests/helpers/workers.py.) In bfloat16 each
    replica's gradient is rounded to 8 bits before the float32 all-reduce: a few roundings of u = 2^-8 over the two
    iterations. Where the CPU's bfloat16 kernels also add in bfloat16 (TensorFlow's own kernels, used without
    oneDNN's bfloat16 support: 6 u measured for G), the order of the sums costs more: the helper measures it on this
    CPU as a one-device run on the batch with its halves swapped, and the mirrored run, another order of the same
    sums, may be twice as far. Plain SGD makes a weight change the rate times the gradient; Adam would not do (its
    first steps move every weight by about +-lr whatever the gradient's size, so a near-zero gradient whose sign
    depends on the order flips a whole step)."""
    result = subprocess.run([sys.executable, os.path.join(HELPERS, "mirrored_step.py")], capture_output=True,
                            text=True, env=default_pools_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for precision in ("off", "bf16"):
        run = out[precision]
        assert run["replicas"] == 2 and run["g_iterations"] == 1
        assert run["patch_layers"] == ["conv3", "conv4", "conv5"]
        # The moving average of G is float32 in either precision and follows its formula (a few roundings of
        # weights below 1) under the mirrored strategy.
        assert run["ema_dtypes"] == ["float32"] and run["G_ema_formula"] < 8 * FLOAT32_ROUNDOFF
    assert out["bf16"]["same_start"]
    for precision, tolerance in (("off", LONGEST_SUM * FLOAT32_ROUNDOFF), ("bf16", 4 * BFLOAT16_ROUNDOFF)):
        run = out[precision]
        for model in ("G", "D", "G_ema"):
            assert run[f"{model}_moved"] > 1e-4, (precision, model)  # the steps changed it: agreement is not trivial
            bound = tolerance + 2 * run.get(f"order_{model}", 0.0)
            assert run[model] < bound, (precision, model, run[model], bound)
        for key, value in run["loss_single"].items():
            # a loss is a sum over the batch as well: the same bound, against the size of its terms
            assert run["loss_multi"][key] == pytest.approx(value, rel=tolerance, abs=tolerance), (precision, key)


def test_batch_must_divide_over_replicas(tmp_path, demo_dataset):
    image_dir, attr_path = demo_dataset
    result = subprocess.run(
        [sys.executable, "train.py", "--cpu_devices", "2", "--distribution_strategy", "mirrored", "--batch_size", "5",
         "--image_size", "32", "--d_repeat_num", "5", "--g_conv_dim", "8", "--d_conv_dim", "8",
         "--celeba_image_dir", image_dir, "--attr_path", attr_path, "--test_size", "8", "--num_iters", "1",
         "--model_save_dir", str(tmp_path / "m"), "--log_dir", str(tmp_path / "l")],
        capture_output=True, text=True, cwd=ROOT, env=env(), timeout=600)
    assert result.returncode == 2
    assert "--batch_size 5 must divide evenly over 2 replicas" in result.stderr


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="multi_worker needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multi_worker")


def throw_away_folders(out_dir):
    return [name for name in os.listdir(os.path.join(out_dir, "tmp")) if name.startswith("stargan-")]


def test_two_workers_train_alike_and_sigterm_to_one_stops_both_at_the_same_step(tmp_path):
    """SIGTERM to the non-chief after step 4: both workers stop at the step they agree on, with identical weights,
    and only the chief wrote into the real folders."""
    procs = start_workers(str(tmp_path / "demo"), str(tmp_path), num_iters=100000, sample_step=2)
    try:
        wait_for(procs[0], tmp_path / "worker0.log", "] 4/100000")
        procs[1].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        stop(procs)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [143, 143], logs[0][-2000:] + logs[1][-2000:]
    step = checkpoints.available_steps(str(tmp_path / "models"))[-1]
    for text in logs:
        assert f"Stopped by SIGTERM at step {step} " in text
        assert "Traceback" not in text
    first, second = np.load(tmp_path / "weights_0.npz"), np.load(tmp_path / "weights_1.npz")
    assert len(first.files) == 28 + 12 + 28  # G, D and the moving average of G
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # Only the chief (worker 0) wrote into the real folders: the stop's checkpoint and the samples every 2 steps.
    assert sorted(os.listdir(tmp_path / "models")) == [".lock", "checkpoint", f"ckpt-{step}.data-00000-of-00001",
                                                       f"ckpt-{step}.index", "config.json"]
    assert sorted(os.listdir(tmp_path / "samples")) == sorted(f"{k}-images.png" for k in range(2, step + 1, 2))
    assert throw_away_folders(tmp_path) == []  # worker 1's were deleted at the stop


@pytest.mark.parametrize("dead", [1, 0])
def test_dead_worker_makes_the_other_exit_with_an_error(tmp_path, dead):
    procs = start_workers(str(tmp_path / "demo"), str(tmp_path), num_iters=100000, collective_timeout=15)
    survivor = 1 - dead
    try:
        deadline = time.time() + 300
        log = tmp_path / f"worker{survivor}.log"
        while "Start training" not in log.read_text():
            assert time.time() < deadline and procs[survivor].poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(2)
        procs[dead].kill()
        killed = time.time()
        code = procs[survivor].wait(timeout=180)
        waited = time.time() - killed
    finally:
        stop(procs)
    assert code != 0
    assert waited < 180
    if survivor == 1:  # a failing non-chief still deletes its throw-away folders
        assert throw_away_folders(tmp_path) == []
