"""One live training run per experiment folder: a lock file holding the owner's pid and host.

A lock left by a process that no longer runs (killed, machine rebooted) is taken over with a warning.
    with ExperimentLock("checkpoints/unet_sample"): train(...)
"""
import json
import os
import socket
from pathlib import Path

from utils.errors import TrainingError, warn

LOCK_NAME = "lock"


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(folder):
    """The lock's {"pid", "host"}, or None when there is no readable lock."""
    try:
        return json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


def lock_is_live(folder):
    """True when a process on this machine that is still running holds the folder's lock."""
    holder = read_lock(folder)
    if not holder:
        return False
    return holder.get("host") != socket.gethostname() or process_alive(int(holder.get("pid", -1)))


class ExperimentLock:
    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self):
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.path.parent) or {}
                if lock_is_live(self.path.parent):
                    raise TrainingError(self.path.parent, f"is in use by a running train (pid {holder.get('pid')} on "
                                                          f"{holder.get('host')}); wait for it, or use another --name") from None
                warn(self.path.parent, f"taking over a stale lock left by pid {holder.get('pid', '?')}, which is no longer running")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            self.held = True
            return self
        raise TrainingError(self.path.parent, "could not take the experiment lock; remove the file named lock if no run is using it")

    def release(self):
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
