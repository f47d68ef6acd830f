"""How a network computes here: its precision (float32, or bfloat16 where the hardware has it) and
its memory layout (contiguous or channels_last_3d). What the flags ask is taken as is; what they
leave to auto is measured, each way timed in turn on the job itself, and the fastest wins (as
cuDNN's benchmark mode picks kernels). Which is fastest depends on the CPU, the network and each
other: channels_last_3d pays in float32 and costs in bfloat16 on AVX-512 CPUs, and bfloat16 does
not pay for very small networks. What was measured is kept in a small cache per machine and job,
so the same command computes the same way, bit for bit, every time on one machine; the cache keeps
other measurements of a job too (`remembered`).

    ways = candidate_ways("auto", "auto", device); best = fastest(ways, measure_ways(ways, time_one_step))
"""
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.device import amp_pays_here, cpu_flags, resolve_amp
from utils.fsio import read_json, write_json_atomic

CACHE_NAME = "compute.json"
TIMED_ROUNDS = 2  # per way, after a warm-up round in which kernels are picked and cached
MARGIN = 0.03  # another way must be at least this much faster than the first (float32 contiguous) to be chosen


@dataclass(frozen=True)
class Compute:
    amp: bool
    channels_last: bool
    note: str = ""

    @property
    def name(self):
        return f"{'bf16' if self.amp else 'fp32'} {'channels_last' if self.channels_last else 'contiguous'}"

    @property
    def memory_format(self):
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format


def candidate_ways(amp, memory_format, device, quiet=False):
    """The ways `--amp` (auto, on, off) and `--memory-format` (auto, contiguous, channels_last)
    leave open, float32 contiguous (the baseline) first when it is one of them."""
    amps = [False, True] if amp == "auto" and amp_pays_here(device) else [resolve_amp(amp, device, quiet)]
    layouts = {"contiguous": [False], "channels_last": [True]}.get(memory_format, [False, True])
    return [Compute(a, layout) for a in amps for layout in layouts]


def measure_ways(ways, time_one, rounds=TIMED_ROUNDS):
    """Seconds of `time_one(index)` for each way: median of `rounds` after a warm-up, ways alternating."""
    seconds = [[] for _ in ways]
    for round_number in range(1 + rounds):
        for index in range(len(ways)):
            spent = time_one(index)
            if round_number:
                seconds[index].append(spent)
    return [statistics.median(values) for values in seconds]


def fastest(ways, seconds):
    """The index of the baseline (the first way) unless another is faster by MARGIN."""
    best = min(range(len(ways)), key=lambda i: seconds[i])
    return best if seconds[best] < (1 - MARGIN) * seconds[0] else 0


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


def choose(ways, key, time_one):
    """The way to compute (a Compute with a note saying how it was chosen): the only one, the one
    measured before for `key`, or the fastest of `ways` timed now with `time_one(index)`."""
    if len(ways) == 1:
        return Compute(ways[0].amp, ways[0].channels_last, "as asked")
    names = [way.name for way in ways]
    timed_now = []

    def measure():
        seconds = measure_ways(ways, time_one)
        timed_now.append(", ".join(f"{n} {s:.3g} s" for n, s in zip(names, seconds)))
        return {"way": ways[fastest(ways, seconds)].name, "seconds": dict(zip(names, seconds))}

    found = remembered(key, measure, usable=lambda value: isinstance(value, dict) and value.get("way") in names)
    way = ways[names.index(found["way"])]
    return Compute(way.amp, way.channels_last, "auto: " + timed_now[0] if timed_now else "auto, as measured before on this machine")
