"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (Kubernetes, Slurm, spot preemption).

While a `StopSignals` block is active the signals only raise a flag; the training loop checks it between
iterations, so the step that is running finishes, the checkpoint's step matches the optimizer state, and
the run ends with `TrainingStopped` (exit status 128 + signal number: 130 for SIGINT, 143 for SIGTERM).
A second signal of the same kind acts at once, as it would without the block.
"""

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training stopped on a signal after saving; `exit_code` is 128 + the signal number."""

    def __init__(self, signum, step, message):
        super().__init__(message)
        self.signum, self.step = signum, step
        self.exit_code = 128 + int(signum)


def signal_name(signum):
    return signal.Signals(signum).name


class StopSignals:
    """Context manager: SIGINT and SIGTERM set `requested` (the signal number) instead of stopping at once."""

    def __init__(self):
        self.requested = 0
        self._previous = {}

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested = signum
            print(f"\n{signal_name(signum)} received: stopping after this iteration (send it again to stop at "
                  "once, unsaved)", flush=True)
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals can only be caught there
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
