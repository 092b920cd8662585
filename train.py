"""Train or test StarGAN: `python train.py` accepts the official main.py command lines."""

import os
import sys

from stargan_tf.config import parse_config
from stargan_tf.data import DataError


def main(argv=None):
    config = parse_config(argv)
    from stargan_tf.solver import Solver

    for d in (config.log_dir, config.model_save_dir, config.sample_dir, config.result_dir):
        os.makedirs(d, exist_ok=True)
    print(config)
    try:
        solver = Solver(config)
        if config.mode == "train":
            solver.train()
        else:
            solver.test()
    except (DataError, FileNotFoundError, ValueError, NotImplementedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
