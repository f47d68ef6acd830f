"""How a network computes here: its precision (float32, or bfloat16 where the hardware has it) and
its memory layout (contiguous or channels_last_3d). What the flags ask is taken as is; what they
leave to auto is measured, each way timed in turn on the job itself (a training step, or a
forward pass: `way_timer`), and the fastest wins (as cuDNN's benchmark mode picks kernels). Which
is fastest depends on the CPU, the network and each other: channels_last_3d pays in float32 and
costs in bfloat16 on AVX-512 CPUs, and bfloat16 does not pay for very small networks. What was
measured is kept per machine and job (compute/cache.py), so the same command computes the same
way, bit for bit, every time on one machine.

    ways = candidate_ways("auto", "auto", device)
    compute = choose(ways, job_key(device, job="train", ...), way_timer(ways, prepare, device))
    print(f"computing in {compute.describe(device)}")     # -> computing in float32, contiguous (auto: ...)
"""
import math
import statistics
import time
from dataclasses import dataclass

import torch

from compute.cache import remembered
from compute.precision import amp_dtype, amp_pays_here, resolve_amp

TIMED_ROUNDS = 2  # per way, after a warm-up round in which kernels are picked and cached
CUDA_SECONDS = 0.25  # on a GPU, where a step takes milliseconds, a way's time is that of repeated runs this long at least
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

    def describe(self, device):
        """The choice in the words every command prints: 'bfloat16, channels_last_3d (as asked)'."""
        precision = str(amp_dtype(device)).removeprefix("torch.") if self.amp else "float32"
        return f"{precision}, {'channels_last_3d' if self.channels_last else 'contiguous'} ({self.note})"


class NotFinite(Exception):
    """What a way's timed run raises when its result is not finite (bfloat16 overflowing, say)."""


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


def way_timer(ways, prepare, device):
    """time_one(index) for `choose`: seconds of one run of `prepare(way)()` for ways[index] (on a
    GPU the mean of as many runs as fill CUDA_SECONDS, with the GPU waited for). The
    runs are prepared (networks copied into each way's layout, say) on the first call, so nothing
    is prepared when the choice is in the cache; a way whose run raises NotFinite takes forever."""
    runs = []

    def time_one(index):
        if not runs:
            runs.extend(prepare(way) for way in ways)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started, done = time.perf_counter(), 0
        while True:
            try:
                runs[index]()
            except NotFinite:
                return math.inf
            done += 1
            if device.type != "cuda":
                break
            torch.cuda.synchronize(device)
            if time.perf_counter() - started >= CUDA_SECONDS:
                break
        return (time.perf_counter() - started) / done

    return time_one


def fastest(ways, seconds):
    """The index of the baseline (the first way) unless another is faster by MARGIN."""
    best = min(range(len(ways)), key=lambda i: seconds[i])
    return best if seconds[best] < (1 - MARGIN) * seconds[0] else 0


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
