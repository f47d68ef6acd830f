"""The training step that compute/trial.py tries in a child process, in each bfloat16 way, before a
run on a CPU with AMX may train in it: the run's networks at its clip shape.

    spec = trial_spec("unet", generator_args, discriminator_args, clip_shape=(5, 4, 96, 96), weights=LossWeights())
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


def trial_spec(network, generator_args, discriminator_args, clip_shape, weights, disc="patch", sources=None, mode="paired"):
    """What the child builds and steps, in training mode `mode`: JSON-ready (a plug-in by the
    verified file in `sources`)."""
    files = {role: record and record["file"] for role, record in (sources or {}).items()}
    return {"network": network, "generator": generator_args, "disc": disc, "discriminator": discriminator_args,
            "sources": {"generator": files.get("generator"), "discriminator": files.get("discriminator")},
            "clip": list(clip_shape), "weights": dataclasses.asdict(weights), "threads": torch.get_num_threads(),
            "mode": mode}


def main():
    """The child: build the networks of the spec on stdin, then step them in each way."""
    from networks import build_discriminator, build_generator, discriminator_spec
    from networks.declared import constructor_defaults
    from training.modes import MODES

    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (*spec["clip"], 3), dtype=np.uint8) for _ in range(2)]
    weights = LossWeights(**spec["weights"])

    mode = MODES[spec["mode"]]
    takes_channels = "in_channels" in constructor_defaults(discriminator_spec(spec["disc"]))

    def new_generator():
        return build_generator(spec["network"], source=spec["sources"]["generator"], **spec["generator"])

    def new_discriminator(channels):
        if spec["discriminator"] is None:  # no adversarial loss
            return None
        return build_discriminator(spec["disc"], source=spec["sources"]["discriminator"], **spec["discriminator"],
                                   **({"in_channels": channels} if takes_channels else {}))

    def step(way):
        torch.manual_seed(0)
        generator, discriminator = mode.networks(new_generator, new_discriminator)
        generator, discriminator = (m.to(memory_format=way.memory_format) if m is not None else None for m in (generator, discriminator))
        x, y = (to_model_input(c, device, way.channels_last) for c in clips)
        mode.new_train_step(pool_size=0, seed=0)(timing_nets(generator, discriminator, device, way.amp), x, y, weights, device, way.amp, NonFiniteGuard(device))

    step_each_way(spec, step)


if __name__ == "__main__":
    main()
