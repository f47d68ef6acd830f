"""bfloat16 training steps tried in a child process before a run trains in bfloat16 on a CPU with AMX.

oneDNN's AMX kernel for convolution weight gradients, in the build that torch 2.14 ships (oneDNN
3.12), dies (segmentation fault, abort) or never returns on some clip shapes: on an Intel Xeon
with AMX, 96 x 96 windows of 4 or 8 frames in batches of 5, where other shapes and every forward
pass run. A crash cannot be caught in the process it happens in, so each bfloat16 way is tried
once in a child, on the run's networks and clip shape, before the run may choose it; a way whose
child dies, or takes far longer than a float32 step, is left out. CPUs without AMX compute
bfloat16 with other kernels, which ran every shape tried, and are not tried this way.

    spec = trial_spec("unet", generator_args, discriminator_args, clip_shape=(5, 4, 96, 96), weights=LossWeights())
    usable, broken = ways_that_run(ways, spec)    # broken: {"bf16 contiguous": "died (SIGSEGV)"}
    python -m training.trial < SPEC.json          # the child: prints "ok INDEX" after each way's step
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.step import LossWeights, Nets, gan_step
from utils.compute import Compute
from utils.device import grad_scaler, to_model_input

ROOT = Path(__file__).resolve().parent.parent
CHILD = [sys.executable, "-m", "training.trial"]
HANG_FACTOR, HANG_SECONDS = 20, 30  # a way has hung after this many float32 steps' time, and at least this long
CHILD_TIMEOUT = 3600  # the child as a whole, should even the float32 step never return


def timing_nets(generator, discriminator, device, amp):
    """Nets around `generator` and `discriminator` (None without an adversarial loss) whose
    optimizers step with a learning rate of 0: a step costs what a training step costs."""
    adam = {"lr": 0.0, "betas": (0.5, 0.999)}
    return Nets(generator, generator, torch.optim.Adam(generator.parameters(), **adam), grad_scaler(device, amp),
                discriminator, discriminator, torch.optim.Adam(discriminator.parameters(), **adam) if discriminator is not None else None)


def trial_spec(network, generator_args, discriminator_args, clip_shape, weights):
    """What the child builds and steps: JSON-ready."""
    return {"network": network, "generator": generator_args, "discriminator": discriminator_args,
            "clip": list(clip_shape), "weights": [weights.gan, weights.l1, weights.mse], "threads": torch.get_num_threads()}


def how_it_ended(done):
    """In words, how a child that did not step every way ended."""
    if done.returncode < 0 and -done.returncode == signal.SIGALRM:
        return f"hung (no step within {HANG_FACTOR} times a float32 step's time, at least {HANG_SECONDS} s)"
    if done.returncode < 0:
        return f"died ({signal.Signals(-done.returncode).name})"
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"failed ({last})"


def ways_that_run(ways, spec, child=CHILD):
    """(the ways in `ways` that run here, {way name: how it failed}): float32 ways as they are,
    bfloat16 ways only after a step of each ran in a child process (`child`: its command line)."""
    untried, broken = [way for way in ways if way.amp], {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    while untried:
        spec_now = {**spec, "ways": [[way.amp, way.channels_last] for way in untried]}
        try:
            done = subprocess.run(child, input=json.dumps(spec_now), capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            broken.update({way.name: "did not finish" for way in untried})
            break
        passed = sum(line.startswith("ok ") for line in done.stdout.splitlines())
        if passed == len(untried):  # every way stepped (however the child ended after that)
            break
        broken[untried[passed].name] = how_it_ended(done)
        untried = untried[passed + 1:]
    return [way for way in ways if way.name not in broken], broken


def main():
    """The child: build the networks of the spec on stdin, time a float32 step, then step each way."""
    from networks import PatchDiscriminator3D, build_generator

    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (*spec["clip"], 3), dtype=np.uint8) for _ in range(2)]
    weights = LossWeights(*spec["weights"])

    def step(way):
        torch.manual_seed(0)
        generator = build_generator(spec["network"], **spec["generator"]).to(memory_format=way.memory_format)
        discriminator = PatchDiscriminator3D(**spec["discriminator"]).to(memory_format=way.memory_format) if spec["discriminator"] else None
        x, y = (to_model_input(c, device, way.channels_last) for c in clips)
        started = time.perf_counter()
        gan_step(timing_nets(generator, discriminator, device, way.amp), x, y, weights, device, way.amp)
        return time.perf_counter() - started

    float32_seconds = step(Compute(False, False))
    for index, (amp, channels_last) in enumerate(spec["ways"]):
        signal.setitimer(signal.ITIMER_REAL, max(HANG_SECONDS, HANG_FACTOR * float32_seconds))  # SIGALRM ends the child
        step(Compute(amp, channels_last))
        signal.setitimer(signal.ITIMER_REAL, 0)
        print("ok", index, flush=True)


if __name__ == "__main__":
    main()
