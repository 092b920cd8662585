"""Mixed precision (bf16, fp16 with loss scaling) and XLA, exercised on the CPU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import hardware, losses
from stargan_tf.config import StarGANConfig, build_parser
from tests.helpers.batches import make_batch
from tests.helpers.configs import TINY


def trainer_with(**changes):
    from stargan_tf.training import StarGANTrainer

    keras.utils.set_random_seed(0)
    return StarGANTrainer.from_config(StarGANConfig(**(TINY | {"n_critic": 1} | changes)).validate())


@pytest.mark.parametrize("precision,compute", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_mixed_precision_steps_train_with_float32_weights_and_outputs(precision, compute):
    trainer = trainer_with(mixed_precision=precision)
    assert trainer.G.get_layer("conv_in").compute_dtype == compute
    assert all(v.dtype == "float32" for v in trainer.G.weights + trainer.D.weights)
    before = trainer.G.get_weights()
    for i in range(2):
        terms = trainer.train_step({"CelebA": make_batch(i)})
    assert all(np.isfinite(float(v)) for v in terms.values())
    assert trainer.G([make_batch(0)["image"], make_batch(0)["label_trg"]]).dtype == tf.float32
    assert any(not np.array_equal(a, b) for a, b in zip(before, trainer.G.get_weights(), strict=True))


def test_fp16_uses_dynamic_loss_scaling():
    trainer = trainer_with(mixed_precision="fp16")
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)


def test_bf16_losses_stay_close_to_float32():
    batch = make_batch(5)
    results = []
    for precision in ("off", "bf16"):
        trainer = trainer_with(mixed_precision=precision)
        results.append(trainer.train_step({"CelebA": batch}))
    for key in ("D/loss_cls", "D/loss_gp", "G/loss_rec", "G/loss_cls"):
        assert float(results[1][key]) == pytest.approx(float(results[0][key]), rel=0.05, abs=0.02)


def test_xla_compiled_step_matches_plain_step():
    batch = make_batch(6)
    terms = [trainer_with(jit_compile=jit).train_step({"CelebA": batch}) for jit in (False, True)]
    for key, value in terms[0].items():
        assert float(terms[1][key]) == pytest.approx(float(value), rel=1e-4, abs=1e-5)


def test_gradient_penalty_scale_changes_nothing_in_float32():
    critic = lambda x: tf.reduce_sum(x**3, axis=[1, 2, 3])  # noqa: E731
    real, fake = tf.random.normal([3, 4, 4, 3], seed=1), tf.random.normal([3, 4, 4, 3], seed=2)
    alpha = tf.random.uniform([3, 1, 1, 1], seed=3)
    plain = losses.gradient_penalty(critic, real, fake, alpha)
    scaled = losses.gradient_penalty(critic, real, fake, alpha, scale=1024.0)
    assert float(scaled) == pytest.approx(float(plain), rel=1e-5)


@pytest.mark.parametrize("flags,capability,expected", [
    ({"avx512_bf16"}, None, "bf16"), ({"amx_bf16"}, None, "bf16"), ({"avx2"}, None, "off"),
    (set(), (9, 0), "bf16"), (set(), (7, 0), "fp16"),
])
def test_auto_precision_follows_hardware(monkeypatch, flags, capability, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "gpu_compute_capability", lambda: capability)
    assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("off") == "off"



@pytest.mark.parametrize("capability,flags,precision,num_iters,expected", [
    (None, {"avx2"}, "off", 200000, True), (None, {"avx2", "avx512f"}, "off", 200000, False),
    (None, {"avx512f", "avx512_bf16"}, "bf16", 200000, False), (None, {"avx2"}, "off", 999, False),
    ((9, 0), set(), "bf16", 10, True), ((7, 0), set(), "fp16", 200000, True),
])
def test_auto_xla_follows_hardware_precision_and_run_length(monkeypatch, capability, flags, precision, num_iters,
                                                             expected):
    monkeypatch.setattr(hardware, "gpu_compute_capability", lambda: capability)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    for auto in ("auto", None):  # None: what older config.json files hold
        assert hardware.resolve_jit(auto, precision, num_iters) is expected
    assert hardware.resolve_jit(not expected, precision, num_iters) is (not expected)  # a given value wins


def test_the_speed_line_says_what_was_chosen_and_why(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(hardware, "gpu_compute_capability", lambda: None)
    assert hardware.describe("auto", "auto", 4000) == (
        "precision off (auto: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so float32); "
        "XLA on (auto: float32 on a CPU without AVX-512, where XLA's kernels were faster)")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert hardware.describe("auto", False, 4000) == ("precision bf16 (auto: this CPU has avx512_bf16); "
                                                      "XLA off (as given)")


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("true", True), ("False", False), (None, True)])
def test_jit_compile_option_takes_true_false_or_auto(value, expected):
    args = build_parser("test").parse_args(["--jit_compile"] + ([] if value is None else [value]))
    assert args.jit_compile == expected
    assert build_parser("test").parse_args([]).jit_compile == "auto"
