"""How a run trains: its precision and memory layout (utils/compute.py), the ways left to auto
timed as real training steps on the first batch, on copies of the networks so that the run's own
are left untouched. Rank 0 decides and every rank follows.

    compute = choose_compute(config, nets, a, b, weights, device, ranks)   # -> Compute(amp, channels_last, note)
"""
import copy
import math
import time

import torch

from training.distributed import any_rank
from training.experiment import generator_args
from training.step import Nets, NonFiniteLoss, gan_step
from utils.compute import Compute, candidate_ways, choose, job_key
from utils.device import grad_scaler, to_model_input


def step_timer(ways, nets, a, b, weights, device):
    """time_one(index): seconds of one training step of copies of `nets` computing as ways[index].
    The copies are made on the first call, so nothing is copied when the choice is in the cache."""
    setups = []

    def copy_nets(way):
        g, d = (copy.deepcopy(m).to(memory_format=way.memory_format) if m is not None else None
                for m in (nets.raw_generator, nets.raw_discriminator))
        adam = {"lr": 0.0, "betas": (0.5, 0.999)}
        copies = Nets(g, g, torch.optim.Adam(g.parameters(), **adam), grad_scaler(device, way.amp),
                      d, d, torch.optim.Adam(d.parameters(), **adam) if d is not None else None)
        return copies, to_model_input(a, device, way.channels_last), to_model_input(b, device, way.channels_last)

    def time_one(index):
        if not setups:
            setups.extend(copy_nets(way) for way in ways)
        copies, x, y = setups[index]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        try:
            gan_step(copies, x, y, weights, device, ways[index].amp)
        except NonFiniteLoss:  # (bf16 overflowing, say): a way whose step is not finite is never chosen
            return math.inf
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    return time_one


def choose_compute(config, nets, a, b, weights, device, ranks):
    """The Compute a run trains with. `a`, `b`: a uint8 batch (B, T, H, W, 3) to time on."""
    ways = candidate_ways(config["amp"], config["memory_format"], device, quiet=not ranks.is_main)
    choice = 0
    if ranks.is_main:
        key = job_key(device, job="train", network=config["network"], generator=generator_args(config), clip=list(a.shape),
                      discriminator=[config[k] for k in ("gan_loss", "d_channels", "d_layers", "spectral_norm")],
                      asked=[config["amp"], config["memory_format"]])
        compute = choose(ways, key, step_timer(ways, nets, a, b, weights, device))
        choice = ways.index(Compute(compute.amp, compute.channels_last))
    if ranks.distributed:  # every rank takes rank 0's way
        choice = any_rank([ranks.is_main and index == choice for index in range(len(ways))], ranks, device).index(True)
    return compute if ranks.is_main else Compute(ways[choice].amp, ways[choice].channels_last, "as rank 0 chose")
