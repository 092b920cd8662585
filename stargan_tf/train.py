"""Train or test StarGAN from the command line (`stargan-train`, `python train.py`): the official main.py flags."""

import sys

from stargan_tf.cli import fail, first_line
from stargan_tf.config import parse_config
from stargan_tf.data import DataError


def main(argv=None):
    config = parse_config(argv)
    import tensorflow as tf

    from stargan_tf import distribute
    from stargan_tf.solver import Solver
    from stargan_tf.stopping import TrainingStopped
    from stargan_tf.training import TrainingError

    print(config)
    try:
        distribute.split_cpu(config.cpu_devices)
        strategy = distribute.make_strategy(config.distribution_strategy, config.collective_timeout)
        solver = Solver(config, strategy)
        if config.mode == "train":
            solver.train()
        else:
            solver.test()
    except TrainingStopped as e:  # SIGINT / SIGTERM: the solver saved and said how to continue
        return e.exit_code
    except KeyboardInterrupt:  # before the training loop, or a second Ctrl-C: stop at once
        print("\nInterrupted: nothing saved since the last checkpoint.", file=sys.stderr)
        return 130
    except (DataError, FileNotFoundError, ValueError) as e:
        return fail(e)
    except TrainingError as e:
        return fail(e, 1)
    except tf.errors.OpError as e:  # e.g. a multi-worker peer died: say so instead of a long trace
        return fail(f"training stopped: {type(e).__name__}: {first_line(e)}", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
