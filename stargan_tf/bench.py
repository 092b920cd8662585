"""Benchmarks that print numbers (never a pass/fail): train-step speed and serving latency.

  python -m stargan_tf.bench --image_size 128 --batch_size 16 --iters 10 [train options]
  python -m stargan_tf.bench ... --mixed_precision off --jit_compile auto   # the speed settings train.py would pick
  python -m stargan_tf.bench --serving --image_size 128 --batch_size 16 --iters 10
  python -m stargan_tf.bench --serving --edit_photo --image_size 128 --iters 5   # needs the faces and dev extras
  python -m stargan_tf.bench --data_only --celeba_image_dir DIR --attr_path FILE --iters 100

The last line printed is one JSON object with the results.
"""

import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_seconds(call, iters):
    """The median wall time of `iters` calls of `call` (which must wait for its result)."""
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_batch(batch_size, image_size, c_dim, seed=0):
    import tensorflow as tf

    from stargan_tf.data import Batch

    rng = np.random.default_rng(seed)
    label = (rng.random((batch_size, c_dim)) > 0.5).astype(np.float32)
    return Batch(image=tf.constant(rng.uniform(-1, 1, (batch_size, image_size, image_size, 3)).astype(np.float32)),
                 label_org=tf.constant(label), label_trg=tf.constant(label[rng.permutation(batch_size)]),
                 alpha=tf.constant(rng.random((batch_size, 1, 1, 1)).astype(np.float32)))._asdict()


def bench_train(config, iters, warmup):
    """Time real train steps (D every iteration, G every n_critic-th) on synthetic batches."""
    import tensorflow as tf

    from stargan_tf.training import StarGANTrainer

    trainer = StarGANTrainer.from_config(config)
    batch = random_batch(config.batch_size, config.image_size, config.c_dim)
    start = time.perf_counter()
    for _ in range(warmup * config.n_critic):  # traces (and with XLA compiles) both step functions
        float(trainer.train_step({"CelebA": batch})["D/loss_real"])
    warmup_s = time.perf_counter() - start
    d_times, g_times = [], []
    for _ in range(iters):
        start = time.perf_counter()
        update_g = (int(trainer.step.numpy()) + 1) % config.n_critic == 0
        terms = trainer.train_step({"CelebA": batch})
        float(terms["D/loss_real"])  # wait for the step to finish
        (g_times if update_g else d_times).append(time.perf_counter() - start)
    d = statistics.mean(d_times) if d_times else float("nan")
    g = statistics.mean(g_times) if g_times else float("nan")
    mean = ((config.n_critic - 1) * d + g) / config.n_critic if g_times and d_times else statistics.mean(
        d_times + g_times)
    return {"mean_s_per_iter": round(mean, 4), "d_step_s": round(d, 4), "g_step_s": round(g, 4),
            "images_per_s": round(config.batch_size / mean, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "device": tf.config.list_logical_devices()[-1].device_type, "iters_timed": iters,
            "precision": trainer.precision, "xla": trainer.jit_compile, "warmup_s": round(warmup_s, 1)}


def bench_data(config, iters, warmup):
    """Images per second through the training input pipeline (decode, crop, resize, flip, targets)."""
    from stargan_tf import data
    from stargan_tf.data import Batch
    from stargan_tf.demo_data import attribute_files

    (paths, labels), _ = data.celeba_files(*attribute_files(config), config.selected_attrs, config.test_size)
    stream = iter(data.train_dataset(paths, labels, config.celeba_crop_size, config.image_size, config.batch_size,
                                     seed=0, num_parallel_calls=config.num_workers))
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    for _ in range(iters):
        Batch.of(next(stream)).image.numpy()
    elapsed = time.perf_counter() - start
    return {"images_per_s": round(iters * config.batch_size / elapsed, 1), "batches_timed": iters,
            "training_images": len(paths), "peak_rss_mb": round(peak_rss_mb(), 1)}


def bench_serving(config, iters):
    """Export an (untrained) generator of this size and time translate_bytes for 1 image and a batch."""
    import tensorflow as tf
    from PIL import Image

    from stargan_tf import serving
    from stargan_tf.export import directory_size
    from stargan_tf.models import build_generator

    generator = build_generator(config.image_size, config.c_dim, config.g_conv_dim, config.g_repeat_num)
    server = serving.GeneratorServer(generator, list(config.selected_attrs), config.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "1")
        serving.save(server, path)
        size_mb = directory_size(path) / 1e6
        fn = tf.saved_model.load(path).signatures["translate_bytes"]
        rng = np.random.default_rng(0)
        jpeg = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
        payload = jpeg.getvalue()
        results = {"export_mb": round(size_mb, 1)}
        for n in (1, config.batch_size):
            images = tf.constant([payload] * n)
            labels = tf.constant((rng.random((n, config.c_dim)) > 0.5).astype(np.float32))
            fn(image_bytes=images, label=labels)  # warm-up
            results[f"translate_bytes_batch{n}_s"] = round(median_seconds(
                lambda b=images, c=labels: fn(image_bytes=b, label=c)["image_bytes"].numpy(), iters), 4)
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results


def edit_photo_payloads():
    """{name: JPEG bytes}: a 1-face 1 MP photo (scikit-image's astronaut at 1024 x 1024) and a 4-face 12 MP one
    (4000 x 3000: the astronaut at 1200, 900, 700 and, mirrored, 1000 px on a grey canvas)."""
    import tensorflow as tf
    from PIL import Image
    from skimage import data as skdata

    def scaled(pixels, side):
        return tf.cast(tf.round(tf.image.resize(pixels, [side, side], antialias=True)), tf.uint8).numpy()

    def jpeg(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    astronaut = skdata.astronaut()
    canvas = np.full((3000, 4000, 3), 96, np.uint8)
    for (top, left), side, mirrored in [((100, 100), 1200, False), ((1600, 1200), 900, False),
                                        ((300, 1700), 700, False), ((1500, 2700), 1000, True)]:
        canvas[top : top + side, left : left + side] = scaled(astronaut[:, ::-1] if mirrored else astronaut, side)
    return {"1face_1mp": jpeg(scaled(astronaut, 1024)), "4faces_12mp": jpeg(canvas)}


def bench_edit_photo(config, iters):
    """Export an (untrained) generator of this size with --include_faces and time edit_photo on one photo of each
    of edit_photo_payloads; the export's size with and without the faces."""
    import tensorflow as tf

    from stargan_tf import serving
    from stargan_tf.export import directory_size
    from stargan_tf.face_graph import FaceDetector
    from stargan_tf.models import build_generator

    generator = build_generator(config.image_size, config.c_dim, config.g_conv_dim, config.g_repeat_num)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, detector in (("without_faces", None), ("with_faces", FaceDetector.from_mtcnn())):
            path = os.path.join(tmp, name)
            serving.save(serving.GeneratorServer(generator, list(config.selected_attrs), config.image_size,
                                                 detector=detector), path)
            results[f"export_{name}_mb"] = round(directory_size(path) / 1e6, 1)
        fn = tf.saved_model.load(path).signatures["edit_photo"]
        label = tf.constant(np.eye(1, config.c_dim, 1, dtype=np.float32))
        for name, payload in edit_photo_payloads().items():
            images = tf.constant([payload])
            faces_found = int(fn(image_bytes=images, label=label)["num_faces"][0])  # warm-up
            results[f"edit_photo_{name}_s"] = round(median_seconds(
                lambda b=images: fn(image_bytes=b, label=label)["image_bytes"].numpy(), iters), 3)
            results[f"edit_photo_{name}_faces"] = faces_found
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results


def main(argv=None):
    from stargan_tf.config import build_parser

    parser = build_parser("Benchmark StarGAN train steps or serving latency.")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of n_critic iterations")
    parser.add_argument("--serving", action="store_true", help="time the exported translate_bytes signature")
    parser.add_argument("--edit_photo", action="store_true",
                        help="with --serving: time the edit_photo signature (export.py --include_faces) on a 1-face "
                             "1 MP and a 4-face 12 MP photo instead")
    parser.add_argument("--data_only", action="store_true",
                        help="time the input pipeline alone on the CelebA-layout folder (--celeba_image_dir)")
    args = parser.parse_args(argv)
    iters, warmup, serving_mode, data_only = args.iters, args.warmup, args.serving, args.data_only
    edit_photo = args.edit_photo
    if edit_photo and not serving_mode:
        parser.error("--edit_photo times a serving signature: give it with --serving")
    for extra in ("iters", "warmup", "serving", "data_only", "edit_photo"):
        delattr(args, extra)
    from stargan_tf.config import StarGANConfig

    try:
        config = StarGANConfig(**vars(args)).validate()
    except ValueError as e:
        parser.error(str(e))
    if data_only:
        result = bench_data(config, iters, max(warmup, 1) * 5)
    elif serving_mode and edit_photo:
        result = bench_edit_photo(config, iters)
    elif serving_mode:
        result = bench_serving(config, iters)
    else:
        result = bench_train(config, iters, warmup)
    result.update({"image_size": config.image_size, "batch_size": config.batch_size})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
