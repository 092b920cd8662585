"""A run's data: each dataset's training and held-out files (read once here for train.py, test mode and the
evaluation command), and the distributed stream of training batches from a step, which names the files of a batch
that fails to decode and can continue without them."""

import numpy as np
import tensorflow as tf

from stargan_tf import data
from stargan_tf.cli import first_line
from stargan_tf.config import ATTRIBUTE_DATASETS, FOLDER_DATASETS


class DatasetSource:
    """One dataset's files: training (paths, labels) and held-out (paths, labels), its crop size and its name."""

    def __init__(self, name, train, test, crop_size):
        self.name, self.train, self.test, self.crop_size = name, train, test, crop_size


def read_sources(config, folder_option="--rafd_image_dir", held_out_dir=None, held_out_option="--eval_dir"):
    """The DatasetSources of `config`'s datasets, and the class folders of its folder dataset (None without one).

    CelebA layout: `config`'s image folder, attribute file and official test split. Folder dataset: the training
    folder `config.rafd_image_dir` (named `folder_option` in errors), held out `held_out_dir` (default: in train mode
    `config.eval_dir`, else the folder itself: test mode's folder is its test data); the classes must be those
    `config.rafd_classes` records, when it records any, and the held-out folder's those of the training folder."""
    sources, classes = [], None
    if config.dataset in ATTRIBUTE_DATASETS:
        train, test = data.celeba_files(config.celeba_image_dir, config.attr_path, config.selected_attrs,
                                        config.test_size)
        sources.append(DatasetSource("CelebA", train, test, config.crop_size("CelebA")))
    if config.dataset in FOLDER_DATASETS:
        paths, labels, classes = data.read_class_folders(config.rafd_image_dir, folder_option)
        if config.rafd_classes and list(config.rafd_classes) != classes:
            raise data.DataError(f"{folder_option} {config.rafd_image_dir} has classes {', '.join(classes)}, but the "
                                 f"model was trained on {', '.join(config.rafd_classes)}")
        held_out = (paths, labels)
        if held_out_dir is None and config.mode == "train":
            held_out_dir = config.eval_dir
        if held_out_dir:
            held_paths, held_labels, held_classes = data.read_class_folders(held_out_dir, held_out_option)
            if held_classes != classes:
                raise data.DataError(f"{held_out_option} {held_out_dir} has classes {', '.join(held_classes)}, but "
                                     f"{folder_option} has {', '.join(classes)}")
            held_out = (held_paths, held_labels)
        sources.append(DatasetSource("RaFD", (paths, labels), held_out, config.crop_size("RaFD")))
    return sources, classes


class TrainingStreams:
    """`{dataset: batch}` training batches of every source, distributed by `strategy`, from batch `start_step` on:
    what `StarGAN.fit` trains on (pass it as `x`). Each dataset's stream is seeded by `config.seed` and its position
    in `layout.datasets`, and continues exactly at any step (`data.train_dataset`).

    When a batch fails to decode, `recover` finds its files: without `config.skip_bad_images` it raises a DataError
    naming the file; with it, the files are left out and the streams start again at that step."""

    def __init__(self, config, layout, sources, strategy=None, start_step=0):
        self.config, self.layout, self.sources = config, layout, sources
        self.strategy = strategy or tf.distribute.get_strategy()
        self.start_step = start_step
        self.skipped = []  # the files left out, in order
        self._pipeline = None  # (first step, shard, per-replica batch, local replicas per pipeline)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(f"--batch_size {config.batch_size} must divide evenly over {replicas} replicas")
        for source in sources:
            if len(source.train[0]) < config.batch_size:
                raise ValueError(f"--batch_size {config.batch_size} is larger than the {len(source.train[0])} "
                                 f"{source.name} training images")

    def _seed(self, source):
        return self.config.seed + 104729 * self.layout.datasets.index(source.name)

    def dataset(self, start_step=None):
        """The distributed dataset of `{dataset: batch}` from `start_step` (default: the streams' first step)."""
        cfg, layout = self.config, self.layout
        start = self.start_step if start_step is None else start_step
        replicas = self.strategy.num_replicas_in_sync

        def input_fn(ctx):
            shard = (ctx.num_input_pipelines, ctx.input_pipeline_id)
            batch = ctx.get_per_replica_batch_size(cfg.batch_size)
            self._pipeline = (start, shard, batch, replicas // ctx.num_input_pipelines)
            return tf.data.Dataset.zip({source.name: data.train_dataset(
                *source.train, source.crop_size, cfg.image_size, batch, seed=self._seed(source),
                num_parallel_calls=cfg.num_workers, shard=shard, start_batch=start,
                labels_to_model=lambda part, name=source.name: layout.encode(name, part), random_flip=cfg.random_flip,
                other_class=cfg.target_sampling == "other" and layout.spec(source.name).one_hot,
            ) for source in self.sources})

        return self.strategy.distribute_datasets_from_function(input_fn)

    def batch_files(self, source, step):
        """The training files of `source` this worker reads for `step` (all its local replicas)."""
        first, shard, batch, local = self._pipeline
        index = first + (step - first) * local
        return [p for i in range(index, index + local)
                for p in data.batch_paths(source.train[0], self._seed(source), batch, i, shard)]

    def recover(self, error, step, save):
        """The batch of `step` (0-based) failed with `error`: a new iterator of the streams from `step` without the
        files that cannot be decoded (`config.skip_bad_images`), or a DataError naming the file, raised after
        `save()` (which saves the step and says what it saved)."""
        cfg, bad = self.config, []
        for source in self.sources:
            for path in self.batch_files(source, step):
                reason = data.undecodable(path, source.crop_size, cfg.image_size)
                if reason:
                    bad.append((source, path, reason))
        if not bad:
            raise data.DataError(f"the training batch of step {step + 1} failed ({first_line(error)}) and no single "
                                 f"file of it could be blamed; {save()}")
        if not cfg.skip_bad_images:
            raise data.DataError(f"{bad[0][1]}: cannot be decoded ({bad[0][2]}); training stopped at step {step} "
                                 f"({save()}). Replace or remove the file and continue with --resume_iters latest, "
                                 "or pass --skip_bad_images True to skip such files")
        for source, path, reason in bad:
            keep = [i for i, p in enumerate(source.train[0]) if p != path]
            source.train = ([source.train[0][i] for i in keep], np.asarray(source.train[1])[keep])
            self.skipped.append(path)
            print(f"Skipped {path}: cannot be decoded ({reason}); {len(self.skipped)} skipped so far")
        return iter(self.dataset(step))
