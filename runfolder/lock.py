"""One live training run per experiment folder: an OS file lock (filelock), which the kernel releases
when its process dies however it dies, so no lock is ever stale. Beside it, `lock.json` names the
holder (pid and host) for the messages; it is informative only.

    with ExperimentLock("checkpoints/unet_sample"): train(...)
"""
import json
import os
import shutil
import socket
import time

from filelock import FileLock, Timeout

from runfolder.layout import RunFolder
from utils.errors import TrainingError, warn
from utils.fsio import describe_os_error, write_json_atomic, writing


def read_owner(folder):
    """{"pid", "host"} of the run that last took the folder's lock, or {} when unknown."""
    try:
        owner = json.loads(RunFolder(folder).lock_owner.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def lock_is_live(folder):
    """True when a running process holds the folder's lock (whatever machine it runs on)."""
    path = RunFolder(folder).lock
    if not path.exists():
        return False
    probe = FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a folder we cannot write: not ours to judge, and no run of ours
        return False
    probe.release()
    return False


def wait_until_free(folder, poll_s=0.5):
    """Wait until no running process holds the folder's lock (a run still saving after its worker
    died, say, or going on for a driver that died)."""
    while lock_is_live(folder):
        time.sleep(poll_s)


class ExperimentLock:
    """Held for a whole run. A second run on the folder is refused, naming the holder; the lock of a
    run that died (killed, machine rebooted) is free, and taking it over says which run left it.
    The folder is created if need be, and removed again if the run left nothing in it."""

    def __init__(self, folder):
        self.folder = RunFolder(folder)
        self.lock = FileLock(str(self.folder.lock))
        self.created = None  # the outermost folder this lock created, removed again if the run left nothing

    def acquire(self):
        missing = [p for p in [self.folder.path, *self.folder.path.parents] if not p.exists()]
        self.created = missing[-1] if missing else None
        try:
            self.folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(self.folder, f"cannot create the experiment folder ({describe_os_error(exc)}); "
                                             f"choose another --checkpoints") from None
        previous = read_owner(self.folder)
        try:
            with writing(self.folder.lock, kept="nothing was trained"):
                self.lock.acquire(timeout=0)
        except Timeout:
            holder = read_owner(self.folder)
            who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
            raise TrainingError(self.folder, f"is in use by a running train ({who}); wait for it, or use another --name") from None
        if previous:
            warn(self.folder, f"taking over from pid {previous.get('pid', '?')} on {previous.get('host', '?')}, "
                              f"which stopped without releasing the experiment (killed?)")
        write_json_atomic(self.folder.lock_owner, {"pid": os.getpid(), "host": socket.gethostname()})
        return self

    def release(self):
        if self.lock.is_locked:
            self.folder.lock_owner.unlink(missing_ok=True)
            self.lock.release()
        if self.created is not None and self.folder.holds_only_the_lock():
            shutil.rmtree(self.created, ignore_errors=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
