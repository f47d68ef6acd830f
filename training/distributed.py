"""Data-parallel training under torchrun: one process per device, gloo on CPU, nccl on CUDA.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs as a single process.
With --max-restarts, torchrun restarts every rank when one dies; train then resumes by itself.
Flags the host decides (a stop signal, the time budget) travel over gloo on the CPU even when the
training's own collectives run over nccl, so that agreeing on them never waits for the GPU.
    torchrun --nproc-per-node 2 --max-restarts 3 main.py train -net unet
"""
import gc
import inspect
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from utils.device import pick_device


STORE_TIMEOUT = timedelta(minutes=30)  # torch's default for the process group's store


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: object = field(default=None, compare=False, repr=False)  # the gloo group of host flags (None: the default group)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def init_distributed(device_choice, timeout_minutes):
    """(Ranks, device): joins the process group when launched by torchrun. Collectives wait up to
    `timeout_minutes` for the slowest rank: the others wait in one while rank 0 alone validates
    (scores, optical flow, sample videos) and saves, which nccl's 10-minute default cuts short."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks(), pick_device(device_choice)
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(device_choice, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    options = {"timeout": timedelta(minutes=timeout_minutes)}
    if device.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        options["device_id"] = device  # nccl binds its communicators to this rank's GPU, never GPU 0's
    if elastic_restart():
        dist.init_process_group(backend, store=restart_store(ranks), rank=ranks.rank, world_size=world_size, **options)
    else:
        dist.init_process_group(backend, **options)
    control = dist.new_group(backend="gloo", timeout=options["timeout"]) if backend == "nccl" else None
    return Ranks(ranks.rank, ranks.world_size, ranks.local_rank, control), device


def restart_store(ranks):
    """The rendezvous store of torchrun's agent, under a prefix of this restart. The agent keeps one
    store across restarts, so without a prefix of their own the ranks of a restarted group read the
    addresses the dead group left there, and gloo fails to connect to them ('Connection refused')."""
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), ranks.world_size,
                          is_master=not agent_hosts and ranks.is_main, timeout=STORE_TIMEOUT)
    return dist.PrefixStore(f"vgan/restart{elastic_restart()}/", store)


def elastic_restart():
    """How many times torchrun (torch.distributed.elastic, --max-restarts) has restarted the worker
    group after a rank died; 0 for a first start or without torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def any_rank(flags, ranks):
    """Element-wise OR of the host's boolean flags across ranks, so every rank takes the same branch
    (over gloo on the CPU: the GPU's queue is not waited for)."""
    if not ranks.distributed:
        return flags
    tensor = torch.tensor([int(f) for f in flags])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=ranks.control)
    return [bool(v) for v in tensor.tolist()]


def device_max(tensor, ranks):
    """The largest value of `tensor` on any rank, left on the device (nccl queues it on the GPU: no host sync)."""
    if ranks.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


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
    """Leave the process group, and join gloo's threads while the interpreter is still whole.

    Why: a gloo worker thread frees the work object of each finished collective, and that object
    holds a Python object (the thread-local state captured when the work was launched), so freeing
    it takes the GIL. Once the interpreter is finalizing, CPython ends a thread that asks for the
    GIL with pthread_exit; the forced unwind runs into a noexcept destructor (~AsyncWork) and
    std::terminate aborts the process: "terminate called without an active exception". gloo's
    threads stop only when the process group is destroyed, and destroy_process_group() destroys it
    only when nothing else holds it: the DDP wrappers (their reducers) do. So the caller drops them
    first (training/loop.py), any reference cycle is collected here, and the group goes now."""
    if ranks.distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
