"""One worker of a multi-worker run (TF_CONFIG set by the caller): train a tiny model, then save its weights to
<out_dir>/weights_<task index>.npz, at the end or where SIGTERM / SIGINT stopped it.
Usage: worker.py DEMO_DIR OUT_DIR NUM_ITERS SAMPLE_STEP."""

import json
import os
import sys

import numpy as np

from stargan_tf import distribute
from stargan_tf.config import StarGANConfig
from stargan_tf.solver import Solver
from stargan_tf.stopping import TrainingStopped

demo_dir, out_dir, num_iters, sample_step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = distribute.make_strategy("multi_worker", collective_timeout=float(os.environ.get("COLLECTIVE_TIMEOUT", 30)))
config = StarGANConfig(
    image_size=32, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=5, batch_size=8, mixed_precision="off",
    jit_compile=False, num_iters=num_iters, g_ema_decay=0.9, log_step=1, sample_step=sample_step,
    model_save_step=num_iters, seed=3, test_size=8,
    dataset="Demo", demo_dir=demo_dir, demo_images=80, log_dir=os.path.join(out_dir, "logs"),
    model_save_dir=os.path.join(out_dir, "models"), sample_dir=os.path.join(out_dir, "samples"),
    result_dir=os.path.join(out_dir, "results"),
).validate()
solver = Solver(config, strategy)
exit_code = 0
try:
    solver.train()
except TrainingStopped as stopped:  # SIGTERM / SIGINT: saved at a step every worker agreed on
    exit_code = stopped.exit_code
np.savez(os.path.join(out_dir, f"weights_{task}.npz"), *solver.G.get_weights(), *solver.D.get_weights(),
         *solver.trainer.G_ema.get_weights())
print(f"worker {task} done", flush=True)
sys.exit(exit_code)
