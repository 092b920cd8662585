"""Train or test StarGAN from the command line (`stargan-train`, `python train.py`): the official main.py flags."""

import re
import sys

from stargan_tf.cli import fail, file_failure, first_line
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
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
        return fail(peer_lost(e), 1)
    except tf.errors.OpError as e:
        return fail(f"training stopped: {type(e).__name__}: {first_line(e)}", 1)
    except OSError as e:  # a file operation the solver does not expect to fail
        return fail(f"training stopped: {file_failure(e, written_folders(config))}", 1)
    return 0


def written_folders(config):
    """(option, folder) of each folder a run writes into, for naming the option of a failed file operation."""
    return [("--model_save_dir", config.model_save_dir), ("--sample_dir", config.sample_dir),
            ("--log_dir", config.log_dir), ("--result_dir", config.result_dir)]


def peer_lost(error):
    """The message for a collective that failed because another worker died or hung: which one (when the error or
    TF_CONFIG tells), and how to resume."""
    from stargan_tf import distribute

    text = getattr(error, "message", None) or str(error)
    config = distribute.tf_config()
    workers = config.get("cluster", {}).get("worker", [])
    own = config.get("task", {}).get("index")
    named = []
    for job, task in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", text):
        index = int(task)
        if job != "localhost" and (job, index) != ("worker", own) and (job, index) not in named:
            named.append((job, index))
    if len(workers) < 2 and not named:
        return f"training stopped: {type(error).__name__}: {first_line(error)}"
    who = ", ".join(f"{job} {index}" + (f" ({workers[index]})" if job == "worker" and index < len(workers) else "")
                    for job, index in named)
    return (f"training stopped: {who or 'another worker'} stopped responding ({type(error).__name__}: the collective "
            "between the workers failed; nothing was saved since the last checkpoint). Restart every worker with "
            "--resume_iters latest (and the same options)")


if __name__ == "__main__":
    sys.exit(main())
