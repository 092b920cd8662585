import keras
import numpy as np
import pytest
import tensorflow as tf

from stargan_tf import losses
from stargan_tf.config import StarGANConfig
from stargan_tf.training import StarGANTrainer, learning_rate_at
from tests.helpers.batches import make_batch
from tests.helpers.configs import TINY


def test_learning_rate_is_constant_then_falls_linearly_to_zero():
    lr = lambda step: learning_rate_at(step, 1e-4, 200000, 100000, 1000)  # noqa: E731
    assert lr(0) == 1e-4
    assert lr(100999) == 1e-4
    assert lr(101000) == pytest.approx(0.99e-4)
    assert lr(150500) == pytest.approx(0.5e-4)
    assert lr(200000) == 0.0


def tiny_trainer(seed=0, **optimizers):
    tf.keras.utils.set_random_seed(seed)
    return StarGANTrainer.from_config(StarGANConfig(**TINY, n_critic=1).validate(), **optimizers)


def copy_weights(src, dst):
    for model in ("G", "D"):
        getattr(dst, model).set_weights(getattr(src, model).get_weights())


def test_d_step_updates_only_the_discriminator():
    trainer = tiny_trainer()
    g_before, d_before = trainer.G.get_weights(), trainer.D.get_weights()
    trainer.step_function("CelebA", False)(make_batch(1))
    assert all(np.array_equal(a, b) for a, b in zip(g_before, trainer.G.get_weights(), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, trainer.D.get_weights(), strict=True))


def naive_g_step(trainer, batch):
    """The official order: recompute G(x, c_trg) after the D update, then the G losses."""
    cfg = trainer.config
    with tf.GradientTape() as tape:
        x_fake = trainer.G([batch["image"], batch["label_trg"]], training=True)
        src, cls = trainer.D(x_fake, training=True)
        x_rec = trainer.G([x_fake, batch["label_org"]], training=True)
        total = (losses.g_adversarial_loss(src) + cfg.lambda_cls * losses.attribute_classification_loss(
            cls, batch["label_trg"]) + cfg.lambda_rec * losses.reconstruction_loss(batch["image"], x_rec))
    grads = tape.gradient(total, trainer.G.trainable_variables)
    trainer.g_optimizer.apply_gradients(zip(grads, trainer.G.trainable_variables, strict=True))


def test_fused_step_equals_official_d_then_g_order():
    """Compared through plain SGD, whose update is the gradient itself (Adam's first step, g/|g|, would
    magnify float round-off in near-zero gradients)."""
    fused, naive = (tiny_trainer(seed, g_optimizer=keras.optimizers.SGD(1.0), d_optimizer=keras.optimizers.SGD(1.0))
                    for seed in (0, 1))
    copy_weights(fused, naive)
    start = fused.G.get_weights() + fused.D.get_weights()
    batch = make_batch(2)
    fused.step_function("CelebA", True)(batch)
    naive.step_function("CelebA", False)(batch)
    naive_g_step(naive, batch)
    after_fused = fused.G.get_weights() + fused.D.get_weights()
    after_naive = naive.G.get_weights() + naive.D.get_weights()
    for w0, a, b in zip(start, after_fused, after_naive, strict=True):
        step_a, step_b = a - w0, b - w0
        assert np.abs(step_a).max() > 0
        np.testing.assert_allclose(step_a, step_b, rtol=1e-3, atol=1e-4 * np.abs(step_b).max())


def test_g_updates_every_n_critic_steps():
    trainer = StarGANTrainer.from_config(StarGANConfig(**TINY, n_critic=3).validate())
    g_iterations = []
    for i in range(6):
        trainer.train_step({"CelebA": make_batch(i)})
        g_iterations.append(int(trainer.g_optimizer.iterations.numpy()))
    assert g_iterations == [0, 0, 1, 1, 1, 2]
    assert int(trainer.d_optimizer.iterations.numpy()) == 6


def test_d_loss_terms_match_hand_assembled_total():
    trainer = tiny_trainer()
    batch = make_batch(3)
    x_fake = trainer.G([batch["image"], batch["label_trg"]])
    total, terms = trainer._d_loss(batch["image"], x_fake, batch["label_org"], batch["alpha"], None,
                                   losses.attribute_classification_loss)
    expected = terms["D/loss_real"] + terms["D/loss_fake"] + terms["D/loss_cls"] + 10 * terms["D/loss_gp"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms["D/loss_gp"]) > 0


def test_one_critic_call_on_real_and_fake_equals_two_calls():
    trainer = tiny_trainer()
    batch = make_batch(4)
    x_fake = trainer.G([batch["image"], batch["label_trg"]])
    _, terms = trainer._d_loss(batch["image"], x_fake, batch["label_org"], batch["alpha"], None,
                               losses.attribute_classification_loss)
    real_src, real_cls = trainer.D(batch["image"])
    fake_src, _ = trainer.D(x_fake)
    assert float(terms["D/loss_real"]) == pytest.approx(-float(tf.reduce_mean(real_src)), rel=1e-5)
    assert float(terms["D/loss_fake"]) == pytest.approx(float(tf.reduce_mean(fake_src)), rel=1e-5)
    expected_cls = losses.attribute_classification_loss(real_cls, batch["label_org"])
    assert float(terms["D/loss_cls"]) == pytest.approx(float(expected_cls), rel=1e-5)


def test_identity_loss_is_the_l1_of_g_keeping_the_source_label():
    tf.keras.utils.set_random_seed(0)
    trainer = StarGANTrainer.from_config(StarGANConfig(**TINY, n_critic=1, lambda_id=2.0).validate())
    batch = make_batch(5)
    expected = float(tf.reduce_mean(tf.abs(batch["image"] - trainer.G([batch["image"], batch["label_org"]]))))
    terms = trainer.step_function("CelebA", True)(batch)
    assert float(terms["G/loss_id"]) == pytest.approx(expected, rel=1e-5)
    assert "G/loss_id" not in tiny_trainer().step_function("CelebA", True)(batch)  # off by default
