"""Two-rank gloo runs end without aborting: the DDP wrappers are dropped and the process group is
destroyed (joining gloo's threads) before the interpreter finalizes. Without that, 3 to 6 runs in 40
aborted at exit with "terminate called without an active exception" (measured with DDP alive at exit:
no teardown, destroy_process_group alone, barrier then destroy). The mechanism is checked inside a
real two-rank train; a few runs end to end show the outcome, and `-m slow` runs fifty."""
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO, TINY, spawn

RANK = r"""
import sys, time, torch
from torch.nn.parallel import DistributedDataParallel as DDP
from training.distributed import barrier, init_distributed, shutdown

ranks, device = init_distributed("cpu", 30)
model = DDP(torch.nn.Conv3d(3, 4, 3, padding=1))
optimizer = torch.optim.Adam(model.parameters())
optimizer.zero_grad()
model(torch.randn(2, 3, 4, 8, 8)).square().mean().backward()  # the allreduce whose work object outlived the interpreter
optimizer.step()
if ranks.is_main:
    time.sleep(0.05)  # rank 0 still writing its checkpoint while rank 1 is done: the race at exit
if sys.argv[1] == "as-train-does":
    barrier(ranks)
    del model, optimizer  # what training/loop.py does with the DDP wrappers before shutdown()
    shutdown(ranks)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# train itself, with destroy_process_group watched: how many DDP wrappers are still alive when it runs.
WATCHED_TRAIN = r"""
import gc, sys
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import main

destroy = dist.destroy_process_group

def watched_destroy(*args, **kwargs):
    gc.collect()
    print("DDP wrappers alive when the group is destroyed:", sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
    destroy(*args, **kwargs)

dist.destroy_process_group = watched_destroy
sys.exit(main.main(sys.argv[1:]))
"""


def two_ranks(args, cwd=REPO):
    """(exit code, stdout, stderr) of each of two ranks of `python ARGS`, launched as torchrun would."""
    port = free_port()
    ranks = [spawn([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
                        "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for rank in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in ranks]
    return [(p.returncode, *output) for p, output in zip(ranks, outputs)]


def test_train_releases_ddp_before_it_destroys_the_process_group(tmp_path, tiny):
    ranks = two_ranks(["-c", WATCHED_TRAIN, "train", "--data", tiny, *TINY, "--max-steps", "2", "--device", "cpu"], cwd=tmp_path)
    for code, out, err in ranks:
        assert code == 0 and "terminate called" not in err, err[-2000:]
        assert "DDP wrappers alive when the group is destroyed: 0" in out, out


def aborted_runs(runs):
    aborted = []
    for run in range(runs):
        for code, _, stderr in two_ranks(["-c", RANK, "as-train-does"]):
            if code != 0 or "terminate called" in stderr:
                aborted.append((run, code, stderr[-500:]))
    return aborted


def test_three_two_rank_runs_end_without_an_abort():
    assert aborted_runs(3) == []


@pytest.mark.slow
def test_fifty_two_rank_runs_end_without_an_abort():
    assert aborted_runs(50) == []
