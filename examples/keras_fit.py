"""Train StarGAN with Keras' fit() and callbacks on the synthetic demo faces; rerun the same command after a crash
and it continues from the last backup. `--tiny` trains a small model for 12 steps (seconds, for CI).

    python examples/keras_fit.py --out keras_run
    python export.py --model_save_dir keras_run/models --export_dir keras_run/export
"""

import argparse
import os

import keras

from stargan_tf import SampleGrid, StarGAN, StarGANCheckpoint, data
from stargan_tf.callbacks import first_images, restore_backup
from stargan_tf.config import StarGANConfig
from stargan_tf.demo_data import generate_demo_dataset

TINY = dict(image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=4, test_size=8,
            mixed_precision="off", num_iters=12, num_iters_decay=6, lr_update_step=2)
DEMO = dict(image_size=32, g_conv_dim=32, d_conv_dim=32, g_repeat_num=4, d_repeat_num=5, num_iters=4000,
            num_iters_decay=2000, lr_update_step=100)  # the model `make demo` trains with train.py


def main(argv=None, extra_callbacks=()):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="keras_run", help="folder for the data, backups, logs, checkpoints, samples")
    parser.add_argument("--tiny", action="store_true", help="a small model for 12 steps: a smoke test in seconds")
    args = parser.parse_args(argv)
    config = StarGANConfig(seed=0, **(TINY if args.tiny else DEMO))
    steps_per_epoch, backup_every, save_every = (4, 3, 6) if args.tiny else (500, 100, 1000)
    image_dir, attr_path = generate_demo_dataset(os.path.join(args.out, "data"), 80 if args.tiny else 2000, seed=0)
    (train_paths, train_labels), (test_paths, test_labels) = data.celeba_files(
        image_dir, attr_path, config.selected_attrs, config.test_size)

    keras.utils.set_random_seed(config.seed)
    model = StarGAN(config)
    model.compile()  # the config's Adam, or compile(g_optimizer=keras.optimizers.Adam(...), d_optimizer=...)
    backup = keras.callbacks.BackupAndRestore(os.path.join(args.out, "backup"), save_freq=backup_every)
    batches = data.train_dataset(
        train_paths, train_labels, config.celeba_crop_size, config.image_size, config.batch_size, seed=config.seed,
        start_batch=restore_backup(model, backup), labels_to_model=lambda part: model.layout.encode("CelebA", part))
    samples = {"CelebA": first_images(test_paths, test_labels, config.celeba_crop_size, config.image_size,
                                      config.batch_size)}
    epochs = config.num_iters // steps_per_epoch
    model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=2, callbacks=[
        backup, keras.callbacks.TensorBoard(os.path.join(args.out, "logs")),
        StarGANCheckpoint(os.path.join(args.out, "models"), every_n_steps=save_every),
        SampleGrid(os.path.join(args.out, "samples"), samples, every_n_steps=save_every), *extra_callbacks])
    return model


if __name__ == "__main__":
    main()
