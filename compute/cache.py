"""Measurements kept per machine and job, in a small JSON file that every vgan process on the
machine shares: the compute choice, the bfloat16 trial, the forward pass's memory cost. Kept so
that the same command computes the same way, bit for bit, every time on one machine, and pays for
a measurement once.

    cost = remembered(job_key(device, job="forward cost", network="unet"), measure)
"""
import hashlib
import json
import os
import time
from pathlib import Path

import torch
from filelock import FileLock

from utils.device import cpu_flags
from utils.errors import UserError, warn
from utils.fsio import describe_os_error, write_json_atomic

CACHE_NAME = "compute.json"


def cache_path():
    """$VGAN_CACHE_DIR, else $XDG_CACHE_HOME/vgan, else ~/.cache/vgan; then compute.json."""
    root = os.environ.get("VGAN_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vgan"
    return Path(root) / CACHE_NAME


def job_key(device, **job):
    """A cache key: this machine (CPU, its flags, caps on its kernels, torch, threads, GPU) and the job."""
    model, flags = cpu_flags()
    machine = {"cpu": model, "flags": flags, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "caps": {name: os.environ.get(name) for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")},
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    return json.dumps({**machine, **job}, sort_keys=True, default=str)


def remembered(key, measure, usable=lambda value: True):
    """The JSON value `measure()` returns, measured once per machine and job `key` and kept in the
    cache: later calls with the same key, in this process or any other, read it back, unless it is
    not `usable` (an older format).

    Two locks keep every process's entry. A key's own lock is held while it is measured, so a
    process that asks for a key another is measuring waits and takes that value: every process
    computes the same way, and one job is never timed twice at once. The file's lock is held
    for each read-merge-write, so an entry, once written, is never lost to a writer that read the
    file before it."""
    path = cache_path()
    found = read_cache(path).get(key)
    if found is not None and usable(found):
        return found
    try:
        locks = lock_folder(path)
        key_lock = FileLock(str(locks / hashlib.sha256(key.encode()).hexdigest()[:24]))
        key_lock.acquire()
    except OSError as exc:
        warn_unkept(path, exc)
        return measure()
    try:
        found = read_cache(path).get(key)  # measured by another process while this one waited
        if found is not None and usable(found):
            return found
        value = measure()
        try:
            with FileLock(str(locks / "file")):
                write_json_atomic(path, {**read_cache(path), key: value})
        except (OSError, UserError) as exc:  # UserError: fsio's one line for a write the file system refused
            warn_unkept(path, exc)
        return value
    finally:
        key_lock.release()


def lock_folder(path):
    folder = path.parent / f".{path.name}.locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_cache(path):
    """The cache's entries; {} when there is none yet. A file that is not a JSON object (damaged by
    a full disk, or edited by hand) is set aside with a warning, never a crash: it is only a cache."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # none yet (or nowhere to keep one: said when writing)
        return {}
    except OSError as exc:
        warn(path, f"cannot be read ({describe_os_error(exc)}); measuring again, and keeping nothing")
        return {}
    try:
        cache = json.loads(text)
    except ValueError:
        cache = None
    if isinstance(cache, dict):
        return cache
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, aside)
        warn(path, f"is not a compute cache (damaged?); set aside as {aside.name}, and measuring again")
    except OSError as exc:
        warn(path, f"is not a compute cache (damaged?) and cannot be set aside ({describe_os_error(exc)}); measuring again")
    return {}


def warn_unkept(path, exc):
    """Nowhere to keep a measurement: say so, since then each run measures again and two runs of
    one command may compute differently (in the last bits)."""
    why = exc.message if isinstance(exc, UserError) else f"cannot be written ({describe_os_error(exc)})"
    warn(path, f"{why}; each run measures its compute choice again, so runs may differ in the last bits: "
               f"set VGAN_CACHE_DIR to a writable folder, or pass --amp and --memory-format")
