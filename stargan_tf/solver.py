"""The training and test loops around the train steps: data, logging, samples, checkpoints, TensorBoard."""

import datetime
import os
import random
import time

import keras
import tensorflow as tf

from stargan_tf import data, domains, images, losses
from stargan_tf.checkpoints import CHECKPOINT_NAME, checkpoint_path
from stargan_tf.config import load_config, save_config
from stargan_tf.demo_data import generate_demo_dataset
from stargan_tf.training import StarGANTrainer


def prepare_dataset_paths(config):
    """For `--dataset Demo`, generate (once) the synthetic CelebA-layout data and point the config at it."""
    if config.dataset == "Demo":
        image_dir, attr_path = generate_demo_dataset(config.demo_dir, config.demo_images, seed=0)
        config.celeba_image_dir, config.attr_path = image_dir, attr_path
    return config


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def progress_line(step, total, start_step, elapsed, terms):
    """`[#####---------------] 1200/200000 (0.6%) | 1.52 it/s | elapsed 0:13:10 | ETA 1 day, 12:22:10 | ...`."""
    done = step - start_step
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = format_duration((total - step) / rate) if rate > 0 else "?"
    filled = int(20 * step / total)
    bar = "#" * filled + "-" * (20 - filled)
    line = (f"[{bar}] {step}/{total} ({100 * step / total:.1f}%) | {rate:.2f} it/s | "
            f"elapsed {format_duration(elapsed)} | ETA {eta}")
    return line + "".join(f" | {k}: {v:.4f}" for k, v in terms.items())


class Solver:
    """Trains and tests StarGAN on one CelebA-layout dataset, as the official Solver does."""

    def __init__(self, config, strategy=None):
        self.config = prepare_dataset_paths(config)
        if config.dataset in ("RaFD", "Both"):
            raise NotImplementedError(f"--dataset {config.dataset} is not implemented yet; use CelebA or Demo")
        if config.seed is None:
            config.seed = random.SystemRandom().randrange(2**31)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.spec = domains.attribute_spec(config.selected_attrs)
        keras.utils.set_random_seed(config.seed)
        self.trainer = StarGANTrainer(config, self.strategy, cls_loss=losses.attribute_classification_loss)
        self.G, self.D = self.trainer.G, self.trainer.D
        self.ckpt = self.trainer.checkpoint()
        self._translate = tf.function(self._generate)

    # ------------------------------------------------------------------ helpers
    def _generate(self, x, c):
        return self.G([x, c], training=False)

    def print_network(self):
        for model, name in ((self.G, "G"), (self.D, "D")):
            print(f"{name} ({model.name}): {len(model.layers)} layers")
            print(f"The number of parameters: {model.count_params()}")

    def _files(self):
        cfg = self.config
        return data.celeba_files(cfg.celeba_image_dir, cfg.attr_path, cfg.selected_attrs, cfg.test_size)

    def _check_stored_config(self):
        """Refuse to resume into a model_save_dir trained with a different architecture or labels."""
        path = os.path.join(self.config.model_save_dir, "config.json")
        if not os.path.exists(path):
            return
        stored = load_config(self.config.model_save_dir).model_dict()
        current = self.config.model_dict()
        diff = [f"--{k} {stored[k]} (stored) vs {current[k]} (given)" for k in stored
                if k != "dataset" and stored[k] != current[k]]
        if diff:
            raise ValueError(f"{path} was written by a different configuration: {'; '.join(diff)}")

    def translate_grid(self, x, c_org):
        """Input column, then one column per domain (the official `create_labels` targets)."""
        columns = [x]
        for c_trg in domains.target_labels(self.spec, c_org):
            columns.append(self._translate(tf.convert_to_tensor(x), tf.convert_to_tensor(c_trg)).numpy())
        return images.grid(columns)

    def _input(self, paths, labels, start_step):
        cfg = self.config
        replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % replicas:
            raise ValueError(f"--batch_size {cfg.batch_size} must divide evenly over {replicas} replicas")

        def input_fn(ctx):
            return data.train_dataset(
                paths, labels, cfg.celeba_crop_size, cfg.image_size, ctx.get_per_replica_batch_size(cfg.batch_size),
                seed=cfg.seed, num_parallel_calls=cfg.num_workers,
                shard=(ctx.num_input_pipelines, ctx.input_pipeline_id), start_batch=start_step,
            )

        return self.strategy.distribute_datasets_from_function(input_fn)

    # ------------------------------------------------------------------ train
    def train(self):
        cfg = self.config
        (train_paths, train_labels), (test_paths, test_labels) = self._files()
        if len(train_paths) < cfg.batch_size:
            raise ValueError(f"--batch_size {cfg.batch_size} is larger than the {len(train_paths)} training images")
        print(f"Training on {len(train_paths)} images, {len(test_paths)} held out for test mode.")
        self.print_network()

        start = 0
        if cfg.resume_iters is not None:
            self._check_stored_config()
            path = checkpoint_path(cfg.model_save_dir, cfg.resume_iters)
            print(f"Loading the trained models from {path}...")
            self.ckpt.restore(path).assert_existing_objects_matched()
            start = int(self.trainer.step.numpy())
        save_config(cfg, cfg.model_save_dir)
        manager = tf.train.CheckpointManager(self.ckpt, cfg.model_save_dir, max_to_keep=None,
                                             checkpoint_name=CHECKPOINT_NAME)
        writer = tf.summary.create_file_writer(cfg.log_dir) if cfg.use_tensorboard else None

        fixed_paths, fixed_labels = (test_paths, test_labels) if len(test_paths) else (train_paths, train_labels)
        fixed_x, fixed_c = next(iter(data.eval_dataset(fixed_paths[: cfg.batch_size], fixed_labels[: cfg.batch_size],
                                                       cfg.celeba_crop_size, cfg.image_size, cfg.batch_size)))
        fixed_x, fixed_c = fixed_x.numpy(), fixed_c.numpy()

        batches = iter(self._input(train_paths, train_labels, start))
        latest = {}  # the last value of every loss term: G's terms change only every n_critic steps
        print("Start training...")
        t0, step = time.time(), start
        try:
            for step in range(start, cfg.num_iters):
                latest.update(self.trainer.train_step(next(batches)))
                done = step + 1
                if done % cfg.log_step == 0:
                    values = {k: float(v) for k, v in latest.items()}
                    print(progress_line(done, cfg.num_iters, start, time.time() - t0, values), flush=True)
                    if writer is not None:
                        self._log_scalars(writer, values, done)
                if done % cfg.sample_step == 0:
                    self._save_sample(writer, fixed_x, fixed_c, done)
                if done % cfg.model_save_step == 0:
                    path = manager.save(checkpoint_number=done)
                    print(f"Saved model checkpoint {path}")
            step = cfg.num_iters
        except KeyboardInterrupt:
            step = int(self.trainer.step.numpy())
            print(f"\nInterrupted at step {step}: saving a checkpoint before exiting.")
            path = manager.save(checkpoint_number=step)
            print(f"Saved model checkpoint {path}; continue with --resume_iters {step}")
            raise
        finally:
            if writer is not None:
                writer.flush()
        if step % cfg.model_save_step and step > start:
            path = manager.save(checkpoint_number=step)
            print(f"Saved final model checkpoint {path}")
        return step

    def _log_scalars(self, writer, values, step):
        g_lr = float(self.trainer.g_optimizer.learning_rate.numpy())
        d_lr = float(self.trainer.d_optimizer.learning_rate.numpy())
        with writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)
            tf.summary.scalar("lr/g_lr", g_lr)
            tf.summary.scalar("lr/d_lr", d_lr)

    def _save_sample(self, writer, fixed_x, fixed_c, step):
        sample = self.translate_grid(fixed_x, fixed_c)
        path = images.save_png(os.path.join(self.config.sample_dir, f"{step}-images.png"), sample)
        print(f"Saved real and fake images into {path}")
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples", sample[None], max_outputs=1)

    # ------------------------------------------------------------------ test
    def test(self):
        cfg = self.config
        self._check_stored_config()
        path = checkpoint_path(cfg.model_save_dir, cfg.test_iters)
        print(f"Loading the trained generator from {path}...")
        tf.train.Checkpoint(generator=self.G).restore(path).expect_partial().assert_existing_objects_matched()
        _, (test_paths, test_labels) = self._files()
        if not len(test_paths):
            raise ValueError("the test split is empty: pass --test_size 1 or more")
        written = []
        for i, (x, c) in enumerate(data.eval_dataset(test_paths, test_labels, cfg.celeba_crop_size, cfg.image_size,
                                                     cfg.batch_size, cfg.num_workers)):
            result = self.translate_grid(x.numpy(), c.numpy())
            written.append(images.save_png(os.path.join(cfg.result_dir, f"{i + 1}-images.png"), result))
            print(f"Saved real and fake images into {written[-1]}")
        return written
