"""The app in its own process, driven over HTTP as a browser would (upload, queue, fetch every result file), and a
measurement of its memory: RSS before, after 8 and after 50 uploads of a 12 MP JPEG, each from a new session.

  python -m tests.helpers.app_memory [--export_dir DIR] [--uploads 50] [--report 1,8,50]

Without --export_dir a tiny model is trained for 5 iterations and exported with its classifier first.
"""

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import numpy as np
from PIL import Image

from tests.helpers import tiny_export

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API = "gradio_api"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(export_dir, folder, *options):
    """The app on a free port in its own process (Gradio's cache and temp files under `folder`): (url, process)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "TF_CPP_MIN_LOG_LEVEL": "2", "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": os.path.join(folder, "gradio"), "TMPDIR": str(folder)}
    log_path = os.path.join(folder, "app.log")
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "stargan_tf.app", "--export_dir", str(export_dir), "--port",
                                    str(port), *options], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(600):  # up to about 5 minutes on a busy 2-core machine
                if process.poll() is not None:
                    raise RuntimeError(f"the app exited with {process.returncode}: {tail(log_path)}")
                try:
                    httpx.get(url, timeout=5)
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            else:
                raise RuntimeError(f"the app did not answer at {url}: {tail(log_path)}")
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=60)


def tail(path, chars=3000):
    with open(path, errors="replace") as f:
        return f.read()[-chars:]


def rss_mb(pid):
    """The process's resident set size in MB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def upload_event(url):
    """(fn_index, trigger_id, number of inputs) of the page's upload event."""
    config = httpx.get(url + "config", timeout=30).json()
    upload = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "upload")
    return next((i, upload, len(d["inputs"])) for i, d in enumerate(config["dependencies"])
                if [upload, "upload"] in [list(t) for t in d["targets"]])


def upload(url, name, payload, event, timeout=600):
    """Upload `payload` as file `name` from a new session, as the page does: the event's output data."""
    session = uuid.uuid4().hex
    with httpx.Client(base_url=url, timeout=timeout) as client:
        stored = client.post(f"{API}/upload", files={"files": (name, payload)})
        stored.raise_for_status()
        file = {"path": stored.json()[0], "orig_name": name, "size": len(payload), "meta": {"_type": "gradio.FileData"}}
        data = [file] + [None] * (event[2] - 1)  # the session's state is filled in by the server
        joined = client.post(f"{API}/queue/join", json={"data": data, "fn_index": event[0], "trigger_id": event[1],
                                                        "session_hash": session, "event_data": None})
        joined.raise_for_status()
        with client.stream("GET", f"{API}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        if not message.get("success"):
                            raise RuntimeError(f"the upload failed: {message}")
                        return message["output"]["data"]
    raise RuntimeError("the queue closed before the upload completed")


def file_urls(data):
    """Every file URL in an event's output data (images, gallery items, downloads)."""
    if isinstance(data, dict):
        found = [data["url"]] if data.get("url") and data.get("path") else []
        return found + [u for v in data.values() for u in file_urls(v)]
    if isinstance(data, list):
        return [u for v in data for u in file_urls(v)]
    return []


def fetch(url):
    """(declared Content-Length, bytes received) of one GET; a body cut short raises httpx.RemoteProtocolError."""
    with httpx.stream("GET", url, timeout=120) as response:
        response.raise_for_status()
        return int(response.headers["content-length"]), len(response.read())


def twelve_megapixels():
    """A 4000 x 3000 JPEG (12 MP): the astronaut's face, enlarged, on a noisy background."""
    from skimage import data as skdata

    rng = np.random.default_rng(0)
    canvas = rng.integers(60, 200, (3000, 4000, 3), dtype=np.uint8)
    canvas[:, 500:3500] = np.asarray(Image.fromarray(skdata.astronaut()).resize((3000, 3000), Image.BICUBIC))
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export_dir")
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--report", default="1,8,50", help="after which uploads to print RSS")
    args = parser.parse_args(argv)
    report = {int(n) for n in args.report.split(",")}
    with tempfile.TemporaryDirectory(prefix="app-memory-") as folder:
        export_dir = args.export_dir or tiny_export.tiny_export(folder)
        payload = twelve_megapixels()
        print(f"photo: 4000 x 3000 JPEG, {len(payload) / 1e6:.1f} MB", flush=True)
        with running_app(export_dir, folder) as (url, process):
            event = upload_event(url)
            time.sleep(2)
            print(f"RSS before: {rss_mb(process.pid):,.0f} MB", flush=True)
            seconds = []
            for i in range(1, args.uploads + 1):
                start = time.perf_counter()
                data = upload(url, "photo.jpg", payload, event)
                for file_url in file_urls(data):
                    declared, received = fetch(file_url)
                    assert declared == received, (file_url, declared, received)
                seconds.append(time.perf_counter() - start)
                if i in report:
                    print(f"RSS after {i} uploads: {rss_mb(process.pid):,.0f} MB; seconds per upload: last "
                          f"{seconds[-1]:.1f}, median {np.median(seconds):.1f}", flush=True)
            message = next((d for d in data if isinstance(d, str)), None)
            print(f"last status: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
