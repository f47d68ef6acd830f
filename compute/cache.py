"""Measurements kept per machine and job, in a small JSON file: the compute choice, the bfloat16
trial, the forward pass's memory cost. Kept so that the same command computes the same way, bit
for bit, every time on one machine, and pays for a measurement once.

    cost = remembered(job_key(device, job="forward cost", network="unet"), measure)
"""
import json
import os
from pathlib import Path

import torch

from utils.device import cpu_flags
from utils.fsio import read_json, write_json_atomic

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
    cache: later calls with the same key read it back, unless it is not `usable` (an older format)."""
    cache = read_json(cache_path())
    cache = cache if isinstance(cache, dict) else {}
    if key in cache and usable(cache[key]):
        return cache[key]
    cache[key] = value = measure()
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_path(), cache)
    except OSError:  # nowhere to keep it: measure again next time
        pass
    return value
