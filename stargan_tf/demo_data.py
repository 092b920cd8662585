"""Synthetic datasets: faces in the exact CelebA layout, drawn so that the five default attributes are visible,
and coloured shapes in the folder-per-class (RaFD) layout.

Faces are drawn with PIL at CelebA's 178x218: hair colour (black, blond, brown, or none of them: auburn)
colours the hair, Male gives short hair and a square jaw (long hair and an oval face otherwise), and
not Young gives pale skin with wrinkles and grey eyebrows. The hair colours are mutually exclusive.
Everything follows from the seed.
"""

import argparse
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw

from stargan_tf.config import DEFAULT_ATTRS

WIDTH, HEIGHT = 178, 218
HAIR_RGB = {"Black_Hair": (28, 24, 24), "Blond_Hair": (236, 204, 104), "Brown_Hair": (116, 66, 30),
            None: (176, 58, 38)}
HAIR_PROBS = {"Black_Hair": 0.3, "Blond_Hair": 0.25, "Brown_Hair": 0.25, None: 0.2}


def _jitter(rng, rgb, amount):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def draw_face(rng, hair, male, young):
    """One face image with the given attributes; `hair` is a hair-colour name or None."""
    bg = tuple(int(v) for v in rng.integers(150, 235, size=3))
    image = Image.new("RGB", (WIDTH, HEIGHT), bg)
    d = ImageDraw.Draw(image)
    cx = WIDTH // 2 + int(rng.integers(-6, 7))
    cy = HEIGHT // 2 + 6 + int(rng.integers(-6, 7))
    scale = float(rng.uniform(0.92, 1.08))
    fw, fh = int(46 * scale), int(60 * scale)
    hair_rgb = _jitter(rng, HAIR_RGB[hair], 12)
    skin = _jitter(rng, (226, 182, 150) if young else (212, 196, 186), 10)

    if not male:  # long hair falls behind the face to the shoulders
        d.rounded_rectangle([cx - fw - 14, cy - fh - 14, cx + fw + 14, cy + fh + 34], radius=30, fill=hair_rgb)
    d.rectangle([cx - 18, cy + fh - 8, cx + 18, cy + fh + 30], fill=skin)  # neck
    shirt = _jitter(rng, (60, 80, 140) if male else (170, 60, 110), 30)
    d.rounded_rectangle([cx - 70, cy + fh + 22, cx + 70, HEIGHT + 20], radius=24, fill=shirt)
    if male:
        d.rounded_rectangle([cx - fw, cy - fh, cx + fw, cy + fh], radius=14, fill=skin)
    else:
        d.ellipse([cx - fw + 4, cy - fh, cx + fw - 4, cy + fh], fill=skin)
    d.chord([cx - fw - 4, cy - fh - 16, cx + fw + 4, cy - fh + 40], 180, 360, fill=hair_rgb)  # hair cap

    brow = (150, 150, 150) if not young else tuple(max(0, c - 40) for c in hair_rgb)
    for side in (-1, 1):
        ex = cx + side * int(18 * scale)
        ey = cy - int(8 * scale)
        d.ellipse([ex - 7, ey - 4, ex + 7, ey + 4], fill=(250, 250, 250))
        d.ellipse([ex - 3, ey - 3, ex + 3, ey + 3], fill=(40, 30, 30))
        d.line([ex - 9, ey - 10, ex + 9, ey - 10], fill=brow, width=4 if male else 2)
        if not young:  # wrinkles at the eyes and a sagging cheek line
            d.line([ex + side * 10, ey - 2, ex + side * 15, ey + 3], fill=(120, 100, 95), width=2)
            d.line([ex - 6, ey + 14, ex + 6, ey + 18], fill=(150, 120, 110), width=2)
    d.line([cx, cy - 2, cx - 4, cy + 14], fill=(170, 120, 100), width=2)  # nose
    mouth = (170, 40, 60) if not male else (150, 90, 80)
    d.line([cx - 12, cy + 28, cx + 12, cy + 28], fill=mouth, width=4 if not male else 3)
    if not young:
        for k in range(3):  # forehead wrinkles
            y = cy - fh + 38 + 6 * k
            d.line([cx - 20, y, cx + 20, y], fill=(140, 115, 105), width=2)
    if male:
        d.arc([cx - fw + 4, cy + 6, cx + fw - 4, cy + fh + 4], 20, 160, fill=(150, 120, 100), width=3)  # jaw line
    return image


def sample_attributes(rng):
    """Draw (hair, male, young) with the hair colours mutually exclusive."""
    choices = list(HAIR_PROBS)
    hair = choices[int(rng.choice(len(choices), p=list(HAIR_PROBS.values())))]
    return hair, bool(rng.random() < 0.5), bool(rng.random() < 0.6)


def _build_in_place(out_dir, marker, build):
    """Run `build(tmp)` in a temporary folder beside `out_dir`, then rename it to `out_dir`.

    An interrupted run never leaves a half-written dataset, and an existing folder is never deleted: a
    complete dataset (one holding `marker`) is reused, also when another process (another worker) finishes
    the same deterministic dataset first; any other existing folder is an error.
    """
    if os.path.exists(out_dir):
        if os.path.exists(os.path.join(out_dir, marker)):
            return
        raise FileExistsError(f"{out_dir} exists but holds no complete generated dataset; remove it or choose "
                              "another folder")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".dataset-", dir=parent)
    try:
        build(tmp)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not os.path.exists(os.path.join(out_dir, marker)):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def generate_demo_dataset(out_dir, num_images=2000, seed=0):
    """Write `out_dir/images/*.jpg` and `out_dir/list_attr_celeba.txt`; returns (image_dir, attr_path).

    Built in a temporary folder and moved into place when complete; an existing complete dataset is reused.
    """

    def build(tmp):
        os.makedirs(os.path.join(tmp, "images"))
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(num_images):
            hair, male, young = sample_attributes(rng)
            name = f"{i + 1:06d}.jpg"
            draw_face(rng, hair, male, young).save(os.path.join(tmp, "images", name), quality=92)
            values = {"Black_Hair": hair == "Black_Hair", "Blond_Hair": hair == "Blond_Hair",
                      "Brown_Hair": hair == "Brown_Hair", "Male": male, "Young": young}
            rows.append(name + " " + " ".join(" 1" if values[a] else "-1" for a in DEFAULT_ATTRS))
        with open(os.path.join(tmp, "list_attr_celeba.txt"), "w") as f:
            f.write(f"{num_images}\n{' '.join(DEFAULT_ATTRS)}\n" + "\n".join(rows) + "\n")

    _build_in_place(out_dir, "list_attr_celeba.txt", build)
    return os.path.join(out_dir, "images"), os.path.join(out_dir, "list_attr_celeba.txt")


def attribute_files(config):
    """(image folder, attribute file) of a CelebA-layout config: for `--dataset Demo` the synthetic set under
    `--demo_dir` (generated on first use), else `--celeba_image_dir` and `--attr_path`."""
    if config.dataset == "Demo":
        return generate_demo_dataset(config.demo_dir, config.demo_images, seed=0)
    return config.celeba_image_dir, config.attr_path


SHAPE_COLOURS = {"blue": (40, 80, 220), "green": (40, 170, 60), "red": (215, 40, 40), "yellow": (235, 205, 40)}


def draw_shape(rng, rgb, size=48):
    """A circle, square or triangle of colour `rgb` at a random place and size on a light random background."""
    bg = tuple(int(v) for v in rng.integers(170, 250, size=3))
    image = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(image)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, size=2))
    colour = _jitter(rng, rgb, 15)
    kind = int(rng.integers(3))
    if kind == 0:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == 1:
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image


def generate_shapes_dataset(out_dir, train_per_class=150, test_per_class=30, seed=0, colours=SHAPE_COLOURS):
    """A folder-per-class dataset (the RaFD layout): `out_dir/{train,test}/<colour>/*.png`, one class per colour.

    Written to a temporary folder and renamed into place; an existing complete dataset is reused.
    """

    def build(tmp):
        rng = np.random.default_rng(seed)
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for name, rgb in colours.items():
                folder = os.path.join(tmp, split, name)
                os.makedirs(folder)
                for i in range(count):
                    draw_shape(rng, rgb).save(os.path.join(folder, f"{i:04d}.png"))

    _build_in_place(out_dir, "test", build)
    return os.path.join(out_dir, "train"), os.path.join(out_dir, "test")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate a synthetic dataset: faces in the CelebA layout, or "
                                                 "coloured shapes in the folder-per-class (RaFD) layout.")
    parser.add_argument("--out", default="data/demo", help="output folder")
    parser.add_argument("--shapes", action="store_true", help="coloured shapes, one class folder per colour")
    parser.add_argument("--num_images", type=int, default=2000, help="faces: number of images")
    parser.add_argument("--train_per_class", type=int, default=150, help="shapes: training images per class")
    parser.add_argument("--test_per_class", type=int, default=30, help="shapes: test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.shapes:
        train, test = generate_shapes_dataset(args.out, args.train_per_class, args.test_per_class, args.seed)
        print(f"Shapes dataset: {train} (train) and {test} (test)")
    else:
        image_dir, attr_path = generate_demo_dataset(args.out, args.num_images, args.seed)
        print(f"Demo dataset: {image_dir} and {attr_path}")


if __name__ == "__main__":
    main()
