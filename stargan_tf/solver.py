"""The training and test loops around the train steps: data, logging, samples, checkpoints, TensorBoard."""

import datetime
import os
import random
import time

import keras
import numpy as np
import tensorflow as tf

from stargan_tf import data, distribute, domains, images, measures
from stargan_tf.checkpoints import CHECKPOINT_NAME, available_steps, checkpoint_path, has_ema, load_generator_weights
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


class DatasetSource:
    """One dataset's files: training (paths, labels) and test (paths, labels), its crop size and its name."""

    def __init__(self, name, train, test, crop_size):
        self.name, self.train, self.test, self.crop_size = name, train, test, crop_size


class Solver:
    """Trains and tests StarGAN on CelebA-layout data, a folder-per-class dataset, or both jointly."""

    def __init__(self, config, strategy=None):
        self.config = prepare_dataset_paths(config)
        if config.seed is None:
            config.seed = random.SystemRandom().randrange(2**31)
        self.sources = self._read_sources()
        config.validate()
        self.strategy = strategy or tf.distribute.get_strategy()
        self.locations = distribute.WriteLocations(self.strategy)
        self.layout = domains.layout_for(config)
        keras.utils.set_random_seed(config.seed)
        self.trainer = StarGANTrainer(config, self.layout, self.strategy)
        self.G, self.D = self.trainer.G, self.trainer.D
        self.ckpt = self.trainer.checkpoint()
        self._translate = tf.function(self._generate)

    # ------------------------------------------------------------------ helpers
    def _generate(self, inputs, training=False):
        x, c = inputs
        return self.trainer.sampler([x, c], training=False)

    def print_network(self):
        for model, name in ((self.G, "G"), (self.D, "D")):
            print(f"{name} ({model.name}): {len(model.layers)} layers")
            print(f"The number of parameters: {model.count_params()}")

    def _read_sources(self):
        """Read the dataset files named by the config (and record the folder classes in it)."""
        cfg, sources = self.config, []
        if cfg.dataset in ("CelebA", "Demo", "Both"):
            train, test = data.celeba_files(cfg.celeba_image_dir, cfg.attr_path, cfg.selected_attrs, cfg.test_size)
            sources.append(DatasetSource("CelebA", train, test, cfg.celeba_crop_size))
        if cfg.dataset in ("RaFD", "Both"):
            paths, labels, classes = data.read_class_folders(cfg.rafd_image_dir)
            if cfg.rafd_classes and list(cfg.rafd_classes) != classes:
                raise data.DataError(f"--rafd_image_dir {cfg.rafd_image_dir} has classes {', '.join(classes)}, "
                                     f"but the model was trained on {', '.join(cfg.rafd_classes)}")
            cfg.rafd_classes = classes
            # The folder given is the data of the mode: the training folder to train, the test folder to test.
            held_out = (paths, labels)
            if cfg.eval_dir and cfg.mode == "train":
                eval_paths, eval_labels, eval_classes = data.read_class_folders(cfg.eval_dir, "--eval_dir")
                if eval_classes != classes:
                    raise data.DataError(f"--eval_dir {cfg.eval_dir} has classes {', '.join(eval_classes)}, but "
                                         f"--rafd_image_dir has {', '.join(classes)}")
                held_out = (eval_paths, eval_labels)
            sources.append(DatasetSource("RaFD", (paths, labels), held_out, cfg.rafd_crop_size))
        return sources

    def _check_stored_config(self):
        """Refuse to resume or test with a different architecture or labels than model_save_dir holds."""
        path = os.path.join(self.config.model_save_dir, "config.json")
        if not os.path.exists(path):
            return
        stored = load_config(self.config.model_save_dir).model_dict()
        current = self.config.model_dict()
        diff = [f"--{k} {stored[k]} (stored) vs {current[k]} (given)" for k in stored
                if k != "dataset" and stored[k] != current[k]]
        if diff:
            raise ValueError(f"{path} was written by a different configuration: {'; '.join(diff)}")

    def translate_grid(self, dataset, x, c_org_part):
        """Input column, then one column per domain of every dataset (the official `create_labels` targets)."""
        columns = [x]
        for c_trg in self.layout.targets(dataset, c_org_part):
            columns.append(self._translate([tf.convert_to_tensor(x), tf.convert_to_tensor(c_trg)]).numpy())
        return images.grid(columns)

    def _input(self, source, start_step):
        cfg = self.config
        replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % replicas:
            raise ValueError(f"--batch_size {cfg.batch_size} must divide evenly over {replicas} replicas")
        paths, labels = source.train
        layout, name = self.layout, source.name

        def input_fn(ctx):
            return data.train_dataset(
                paths, labels, source.crop_size, cfg.image_size, ctx.get_per_replica_batch_size(cfg.batch_size),
                seed=cfg.seed + 104729 * layout.datasets.index(name), num_parallel_calls=cfg.num_workers,
                shard=(ctx.num_input_pipelines, ctx.input_pipeline_id), start_batch=start_step,
                labels_to_model=lambda part: layout.encode(name, part), random_flip=cfg.random_flip,
                other_class=cfg.target_sampling == "other" and layout.spec(name).one_hot,
            )

        return iter(self.strategy.distribute_datasets_from_function(input_fn))

    def _fixed_batches(self):
        """The first test images of each dataset (training images when its test split is empty)."""
        cfg, fixed = self.config, []
        for source in self.sources:
            paths, labels = source.test if len(source.test[0]) else source.train
            x, c = next(iter(data.eval_dataset(paths[: cfg.batch_size], labels[: cfg.batch_size], source.crop_size,
                                               cfg.image_size, cfg.batch_size)))
            fixed.append((source.name, x.numpy(), c.numpy()))
        return fixed

    # ------------------------------------------------------------------ train
    def train(self):
        cfg = self.config
        for source in self.sources:
            if len(source.train[0]) < cfg.batch_size:
                raise ValueError(f"--batch_size {cfg.batch_size} is larger than the {len(source.train[0])} "
                                 f"{source.name} training images")
            print(f"{source.name}: training on {len(source.train[0])} images"
                  + (f", {len(source.test[0])} held out for test mode." if source.name == "CelebA" else "."))
        self.print_network()
        print(f"Strategy: {type(self.strategy).__name__} with {self.strategy.num_replicas_in_sync} replica(s); "
              f"precision {self.trainer.precision}; XLA {'on' if self.trainer.jit_compile else 'off'}")

        start = 0
        existing = available_steps(cfg.model_save_dir)
        if cfg.resume_iters is None and existing:
            raise ValueError(f"--model_save_dir {cfg.model_save_dir} already holds checkpoints (steps "
                             f"{', '.join(map(str, existing))}); continue with --resume_iters latest, or choose "
                             "another --model_save_dir so that they are not overwritten")
        if cfg.resume_iters is not None:
            self._check_stored_config()
            path = checkpoint_path(cfg.model_save_dir, cfg.resume_iters)
            print(f"Loading the trained models from {path}...")
            if self.trainer.G_ema is not None and not has_ema(path):
                self.trainer.checkpoint(with_ema=False).restore(path).assert_existing_objects_matched()
                self.trainer.reset_ema()
                print(f"{path} holds no moving average of G: it starts from the restored G")
            else:
                self.ckpt.restore(path).expect_partial().assert_existing_objects_matched()
            start = int(self.trainer.step.numpy())
        chief = self.locations.chief
        if chief:
            save_config(cfg, cfg.model_save_dir)
        # Every worker saves (the save is a collective), but only the chief into model_save_dir.
        manager = tf.train.CheckpointManager(self.ckpt, self.locations.path(cfg.model_save_dir), max_to_keep=None,
                                             checkpoint_name=CHECKPOINT_NAME)
        writer = tf.summary.create_file_writer(cfg.log_dir) if cfg.use_tensorboard and chief else None
        fixed = self._fixed_batches()
        held_out = self._held_out() if cfg.eval_step and chief else None
        streams = {source.name: self._input(source, start) for source in self.sources}
        latest = {}  # the last value of every loss term: G's terms change only every n_critic steps
        print("Start training...")
        t0, step = time.time(), start
        try:
            for step in range(start, cfg.num_iters):
                latest.update(self.trainer.train_step({name: next(it) for name, it in streams.items()}))
                done = step + 1
                if done % cfg.log_step == 0 and chief:
                    values = {k: float(v) for k, v in latest.items()}
                    print(progress_line(done, cfg.num_iters, start, time.time() - t0, values), flush=True)
                    if writer is not None:
                        self._log_scalars(writer, values, done)
                if done % cfg.sample_step == 0 and chief:
                    self._save_sample(writer, fixed, done)
                if held_out and done % cfg.eval_step == 0:
                    self._evaluate(writer, held_out, done)
                if done % cfg.model_save_step == 0:
                    path = manager.save(checkpoint_number=done)
                    print(f"Saved model checkpoint {path}")
            step = cfg.num_iters
            if step % cfg.model_save_step and step > start:
                path = manager.save(checkpoint_number=step)
                print(f"Saved final model checkpoint {path}")
        except KeyboardInterrupt:
            step = int(self.trainer.step.numpy())
            print(f"\nInterrupted at step {step}: saving a checkpoint before exiting.")
            path = manager.save(checkpoint_number=step)
            print(f"Saved model checkpoint {path}; continue with --resume_iters {step}")
            raise
        finally:
            if writer is not None:
                writer.flush()
            self.locations.cleanup()  # a non-chief worker's throw-away folders, also when training fails
        return step

    def _log_scalars(self, writer, values, step):
        g_lr = float(self.trainer.g_optimizer.learning_rate.numpy())
        d_lr = float(self.trainer.d_optimizer.learning_rate.numpy())
        with writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)
            tf.summary.scalar("lr/g_lr", g_lr)
            tf.summary.scalar("lr/d_lr", d_lr)

    def _held_out(self):
        """For --eval_step: per dataset, its judge (trained once on the real training images, cached in
        model_save_dir/judges) and a fixed, seeded subset of its held-out images."""
        cfg, parts = self.config, {}
        for source in self.sources:
            if source.name == "RaFD" and not cfg.eval_dir:
                raise ValueError("--eval_step needs held-out images of the folder dataset: pass --eval_dir (one "
                                 "folder per class, the classes of --rafd_image_dir)")
            if not len(source.test[0]):
                raise ValueError(f"--eval_step needs held-out images, but the {source.name} test split is empty: "
                                 "pass --test_size 1 or more")
            one_hot = self.layout.spec(source.name).one_hot
            print(f"--eval_step: preparing the {source.name} judge (trained once on the real training images)...")
            judge, path, trained = measures.judge_for(os.path.join(cfg.model_save_dir, "judges"), source.name, one_hot,
                                                      *source.train, source.crop_size, cfg.image_size)
            print(f"{'Trained' if trained else 'Loaded'} {path}")
            x, labels = measures.load_split(*source.test, source.crop_size, cfg.image_size, limit=cfg.eval_images)
            parts[source.name] = (judge, x, labels)
        return parts

    def _evaluate(self, writer, held_out, step):
        """Judge the sampling generator's translations of the held-out subsets; print and log the measures."""
        for name, (judge, x, labels) in held_out.items():
            result = measures.measure(self._translate, judge, self.layout, name, x, labels)
            prefix = f"eval/{name}" if self.layout.has_mask else "eval"
            values = measures.scalars(result, prefix)
            print(f"Evaluation at step {step} ({name}, {len(x)} held-out images): " + ", ".join(
                f"{k.split('/')[-1]} {values[f'{prefix}/{k}']:.4f}" for k in measures.SCALARS
                if f"{prefix}/{k}" in values))
            if writer is not None:
                with writer.as_default(step=step):
                    for tag, value in values.items():
                        tf.summary.scalar(tag, value)

    def _save_sample(self, writer, fixed, step):
        sample = np.concatenate([self.translate_grid(name, x, c) for name, x, c in fixed], axis=0)
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
        load_generator_weights(self.trainer.sampler, path)
        written = []
        for source in self.sources:
            paths, labels = source.test
            if not len(paths):
                raise ValueError(f"the {source.name} test split is empty: pass --test_size 1 or more")
            prefix = f"{source.name}-" if self.layout.has_mask else ""
            batches = data.eval_dataset(paths, labels, source.crop_size, cfg.image_size, cfg.batch_size,
                                        cfg.num_workers)
            for i, (x, c) in enumerate(batches):
                result = self.translate_grid(source.name, x.numpy(), c.numpy())
                written.append(images.save_png(os.path.join(cfg.result_dir, f"{prefix}{i + 1}-images.png"), result))
                print(f"Saved real and fake images into {written[-1]}")
        return written
