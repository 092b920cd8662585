"""An exclusive lock on a training folder, so that two runs never write checkpoints into one --model_save_dir.

The lock is `flock` on `<folder>/.lock`: the kernel releases it when the holding process ends in any way
(exit, crash, kill -9), so a lock left behind by a dead run is free again without any clean-up. The file
records who holds it, for the message a second run gets. (flock does not reach across machines on some
network file systems; there, give each run its own folder.)
"""

import datetime
import fcntl
import os
import socket

LOCK_FILE = ".lock"


class FolderInUse(ValueError):
    """Another live process holds the folder's lock; the message names it."""


class FolderLock:
    """`with FolderLock(folder):` holds the folder's lock for the block, or raises FolderInUse at once."""

    def __init__(self, folder, option="--model_save_dir"):
        self.folder, self.option = folder, option
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that has just started"
            os.close(fd)
            raise FolderInUse(f"{self.option} {self.folder} is in use by another training run ({holder}); wait "
                              f"for it to end, stop it, or choose another {self.option}") from None
        since = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        """Unlock (the file stays: deleting it could let two later runs lock two different files)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
