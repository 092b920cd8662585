"""Two multi-worker training processes (tests/helpers/worker.py) on localhost: start_workers, stop."""

import json
import os
import socket
import subprocess
import sys

HELPERS = os.path.dirname(os.path.abspath(__file__))


def env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(demo_dir, out_dir, num_iters, collective_timeout=30):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    tmp = os.path.join(out_dir, "tmp")  # the workers' TMPDIR, where a non-chief writes its throw-away folders
    os.makedirs(tmp, exist_ok=True)
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        log = open(os.path.join(out_dir, f"worker{index}.log"), "w")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HELPERS, "worker.py"), demo_dir, out_dir, str(num_iters)], stdout=log,
            stderr=subprocess.STDOUT,
            env=env(TF_CONFIG=tf_config, COLLECTIVE_TIMEOUT=str(collective_timeout), TMPDIR=tmp)))
    return procs


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
