"""Train or test StarGAN: `python train.py` accepts the official main.py command lines."""

import sys

from stargan_tf.config import parse_config
from stargan_tf.data import DataError


def main(argv=None):
    config = parse_config(argv)
    import tensorflow as tf

    from stargan_tf import distribute
    from stargan_tf.solver import Solver

    print(config)
    try:
        distribute.split_cpu(config.cpu_devices)
        strategy = distribute.make_strategy(config.distribution_strategy, config.collective_timeout)
        solver = Solver(config, strategy)
        if config.mode == "train":
            solver.train()
        else:
            solver.test()
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except tf.errors.OpError as e:  # e.g. a multi-worker peer died: say so instead of a long trace
        lines = [line for line in e.message.splitlines() if line.strip()]
        print(f"error: training stopped: {type(e).__name__}: {lines[0] if lines else e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
