"""How a run computes, chosen on the machine at hand: its precision (float32, or bfloat16 where the
hardware has it) and its memory layout (contiguous or channels_last_3d). What is asked for
(`--amp on|off`, `--memory-format contiguous|channels_last`) is taken as is; what is left to `auto`
is measured: the first batch is trained a few steps each way, on copies of the networks, and the
fastest way wins (as cuDNN's benchmark mode picks kernels). Which is fastest depends on the CPU,
the network and each other: channels_last_3d pays in float32 and costs in bfloat16 on AVX-512
CPUs, and bfloat16 does not pay for very small networks. The choice is kept in a small cache per
machine and configuration, so the same command computes the same way, bit for bit, every time
on one machine.

    compute = choose_compute(config, nets, a, b, weights, device, ranks)   # -> Compute(amp, channels_last, note)
"""
import copy
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from training.distributed import any_rank
from training.step import Nets, gan_step
from utils.device import amp_pays_here, cpu_flags, grad_scaler, resolve_amp, to_model_input
from utils.fsio import read_json, write_json_atomic

CACHE_NAME = "compute.json"
TIMED_STEPS = 2  # per candidate, after one warm-up step each
MARGIN = 0.03  # another way must be at least this much faster than float32 contiguous to be chosen


@dataclass(frozen=True)
class Compute:
    amp: bool
    channels_last: bool
    note: str = ""

    @property
    def name(self):
        return f"{'bf16' if self.amp else 'fp32'} {'channels_last' if self.channels_last else 'contiguous'}"


def cache_path():
    """$VGAN_CACHE_DIR, else $XDG_CACHE_HOME/vgan, else ~/.cache/vgan; then compute.json."""
    root = os.environ.get("VGAN_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vgan"
    return Path(root) / CACHE_NAME


def candidates(config, device, quiet=False):
    """The ways left open by the flags, float32 contiguous (the baseline) first when it is one."""
    amps = [False, True] if config["amp"] == "auto" and amp_pays_here(device) else [resolve_amp(config["amp"], device, quiet)]
    layouts = {"contiguous": [False], "channels_last": [True]}.get(config["memory_format"], [False, True])
    return [Compute(amp, channels_last) for amp in amps for channels_last in layouts]


def cache_key(config, generator_args, clip_shape, device):
    """What the fastest way depends on: machine, kernels, torch, threads, networks, clip shape, the flags."""
    model, flags = cpu_flags()
    return json.dumps({"cpu": model, "flags": flags, "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "caps": {name: os.environ.get(name) for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")},
                       "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                       "network": config["network"], "generator": generator_args, "clip": list(clip_shape),
                       "discriminator": [config[k] for k in ("gan_loss", "d_channels", "d_layers", "spectral_norm")],
                       "asked": [config["amp"], config["memory_format"]]}, sort_keys=True)


def time_candidates(ways, nets, a, b, weights, device):
    """Seconds per training step of each way, measured on copies of the networks (the run's own are
    left untouched), the ways alternating."""
    setups = []
    for way in ways:
        layout = torch.channels_last_3d if way.channels_last else torch.contiguous_format
        g, d = (copy.deepcopy(m).to(memory_format=layout) if m is not None else None for m in (nets.raw_generator, nets.raw_discriminator))
        adam = {"lr": 0.0, "betas": (0.5, 0.999)}
        copies = Nets(g, g, torch.optim.Adam(g.parameters(), **adam), grad_scaler(device, way.amp),
                      d, d, torch.optim.Adam(d.parameters(), **adam) if d is not None else None)
        setups.append((copies, to_model_input(a, device, way.channels_last), to_model_input(b, device, way.channels_last)))
    times = [[] for _ in ways]
    for round_number in range(1 + TIMED_STEPS):  # the first round warms up: kernels are picked and cached then
        for way, (copies, x, y), spent in zip(ways, setups, times):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            gan_step(copies, x, y, weights, device, way.amp)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_number:
                spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def fastest(ways, seconds):
    """The baseline (the first way) unless another is faster by MARGIN."""
    best = min(range(len(ways)), key=lambda i: seconds[i])
    return best if seconds[best] < (1 - MARGIN) * seconds[0] else 0


def choose_compute(config, nets, a, b, weights, device, ranks, key):
    """The Compute a run trains with. `a`, `b`: a uint8 batch (B, T, H, W, 3) to time on. Rank 0
    decides and every rank follows."""
    ways = candidates(config, device, quiet=not ranks.is_main)
    choice, note = 0, "as asked"
    if len(ways) > 1 and ranks.is_main:
        cache = read_json(cache_path())
        cache = cache if isinstance(cache, dict) else {}
        if key in cache and cache[key].get("way") in [way.name for way in ways]:
            choice, note = [way.name for way in ways].index(cache[key]["way"]), "auto, as measured before on this machine"
        else:
            seconds = time_candidates(ways, nets, a, b, weights, device)
            choice = fastest(ways, seconds)
            note = "auto: " + ", ".join(f"{way.name} {s:.3g} s/step" for way, s in zip(ways, seconds))
            cache[key] = {"way": ways[choice].name, "seconds_per_step": dict(zip([way.name for way in ways], seconds))}
            try:
                cache_path().parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(cache_path(), cache)
            except OSError:  # nowhere to keep it: measure again next time
                pass
    if ranks.distributed:  # every rank takes rank 0's way
        choice = any_rank([ranks.is_main and index == choice for index in range(len(ways))], ranks, device).index(True)
    return Compute(ways[choice].amp, ways[choice].channels_last, note)
