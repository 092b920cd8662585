"""Train or test StarGAN: `python train.py` accepts the official main.py command lines (`stargan-train` when
installed; the code is `stargan_tf.train`)."""

import sys

from stargan_tf.train import main

if __name__ == "__main__":
    sys.exit(main())
