"""Two multi-worker training processes (tests/helpers/worker.py) on localhost: start_workers, stop; wait_for a line
in a process's log."""

import json
import os
import socket
import subprocess
import sys
import time

HELPERS = os.path.dirname(os.path.abspath(__file__))


def env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def default_pools_env():
    """env() with TensorFlow's default pools, even if the caller set TF_NUM_INTRAOP_THREADS or
    TF_NUM_INTEROP_THREADS: two logical CPU devices mirrored as users run them. With one intra-op thread,
    TensorFlow's own kernels (an AVX2-only CPU's) put the mirrored weights of G 70 times further from the one-device
    ones (6.9e-4 relative after 4 fit() steps, every run, against 1e-5 with the default pools); with both pools at one
    thread, D's mirrored step now and then went 3.6e-3 and 2.3e-2 away (2 of 6 pytest runs; 1.7e-6 in the others)."""
    return {k: v for k, v in env().items() if k not in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(demo_dir, out_dir, num_iters, collective_timeout=30, sample_step=None):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    tmp = os.path.join(out_dir, "tmp")  # the workers' TMPDIR, where a non-chief writes its throw-away folders
    os.makedirs(tmp, exist_ok=True)
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        log = open(os.path.join(out_dir, f"worker{index}.log"), "w")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HELPERS, "worker.py"), demo_dir, out_dir, str(num_iters),
             str(sample_step or num_iters)], stdout=log,
            stderr=subprocess.STDOUT,
            env=env(TF_CONFIG=tf_config, COLLECTIVE_TIMEOUT=str(collective_timeout), TMPDIR=tmp)))
    return procs


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_for(proc, log_path, text, timeout=300):
    """Wait until `text` is in the log at `log_path`; fail with the log's end if `proc` exits first or time runs out."""
    deadline = time.time() + timeout
    while text not in open(log_path).read():
        assert proc.poll() is None and time.time() < deadline, open(log_path).read()[-3000:]
        time.sleep(0.2)
