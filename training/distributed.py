"""Data-parallel training under torchrun: one process per device, gloo on CPU, nccl on CUDA.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs as a single process.
    torchrun --nproc-per-node 2 main.py train -net unet
"""
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.device import pick_device


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def init_distributed(device_choice):
    """(Ranks, device): joins the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks(), pick_device(device_choice)
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(device_choice, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def any_rank(flags, ranks, device):
    """Element-wise OR of boolean flags across ranks, so every rank takes the same branch."""
    if not ranks.distributed:
        return flags
    tensor = torch.tensor([int(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def ranks_agree(modules, ranks, device):
    """True when every rank holds exactly the same parameters (a float64 checksum compared across ranks)."""
    if not ranks.distributed:
        return True
    checks = []
    for module in modules:
        for p in module.parameters():
            flat = p.detach().double().flatten()
            weights = torch.arange(1, flat.numel() + 1, device=flat.device, dtype=torch.float64)
            checks += [flat.sum(), (flat * flat).sum(), (flat * weights).sum()]
    local = torch.stack(checks).to(device)
    gathered = [torch.empty_like(local) for _ in range(ranks.world_size)]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def barrier(ranks):
    if ranks.distributed:
        dist.barrier()


def shutdown(ranks):
    """Leave the process group. DDP wrappers are collected first: one left for the interpreter's
    exit can hold gloo threads that abort the process ('terminate called without an active exception')."""
    if ranks.distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
