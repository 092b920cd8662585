"""Run examples/keras_fit.py --tiny into OUT_DIR, recording the model's step after every batch fit() hands over; with
KILL_AT, the process kills itself with SIGKILL once the step reaches it (a crash at a known point). Prints
{"steps": [...]} when fit() returns. Usage: keras_fit_example.py OUT_DIR [KILL_AT]."""

import json
import os
import runpy
import signal
import sys

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out_dir = sys.argv[1]
kill_at = int(sys.argv[2]) if len(sys.argv) > 2 else None


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.step.numpy()))
        if self.steps[-1] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


record = Record()
runpy.run_path(os.path.join(ROOT, "examples", "keras_fit.py"))["main"](["--tiny", "--out", out_dir], [record])
print(json.dumps({"steps": record.steps}))
