"""The training step that compute/trial.py tries in a child process, in each bfloat16 way, before a
run on a CPU with AMX may train in it: the run's networks at its clip shape.

    spec = trial_spec(run_spec(config), clip_shape=(5, 4, 96, 96), weights=LossWeights())
    usable, broken = ways_that_run(ways, spec, CHILD)    # broken: {"bf16 contiguous": "died (SIGSEGV)"}
    python -m training.trial < SPEC.json                 # the child: prints "ok INDEX" after each way's step
"""
import dataclasses
import json
import sys

import numpy as np
import torch

from compute.precision import grad_scaler
from compute.trial import step_each_way
from training.step import LossWeights, Nets, NonFiniteGuard
from utils.device import to_model_input

CHILD = [sys.executable, "-m", "training.trial"]


def timing_nets(generator, discriminator, device, amp):
    """Nets around `generator` and `discriminator` (None without an adversarial loss) whose
    optimizers step with a learning rate of 0: a step costs what a training step costs."""
    return Nets.around(generator, discriminator, grad_scaler(device, amp), lr=0.0)


def trial_spec(run, clip_shape, weights):
    """What the child builds and steps: the RunSpec `run`'s flags and plug-in records, JSON-ready."""
    described = run.described()
    return {"config": described["config"], "sources": described["sources"], "clip": list(clip_shape),
            "weights": dataclasses.asdict(weights), "threads": torch.get_num_threads()}


def main():
    """The child: build the networks of the spec on stdin, then step them in each way."""
    from training.run_spec import run_spec

    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (*spec["clip"], 3), dtype=np.uint8) for _ in range(2)]
    weights = LossWeights(**spec["weights"])
    run = run_spec(spec["config"], spec["sources"])
    mode = run.mode.load()

    def step(way):
        torch.manual_seed(0)
        generator, discriminator = mode.networks(lambda: run.build_generator(device), lambda c: run.build_discriminator(device, c))
        generator, discriminator = (m.to(memory_format=way.memory_format) if m is not None else None for m in (generator, discriminator))
        x, y = (to_model_input(c, device, way.channels_last) for c in clips)
        mode.new_train_step(pool_size=0, seed=0)(timing_nets(generator, discriminator, device, way.amp), x, y, weights, device, way.amp, NonFiniteGuard(device))

    step_each_way(spec, step)


if __name__ == "__main__":
    main()
