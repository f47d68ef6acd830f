"""How a run trains: its precision and memory layout (compute/), the ways left to auto timed as
real training steps on the first batch, on copies of the networks so that the run's own are left
untouched. On a CPU with AMX, a bfloat16 way is first tried in a child process (compute/trial.py,
stepping training/trial.py): one that dies there is never chosen. Rank 0 decides and every rank follows.

    compute = choose_compute(spec, generator, discriminator, a, b, weights, device, ranks, step)   # -> Compute(...)
"""
import copy
import dataclasses

from compute.cache import job_key, remembered
from compute.choice import Compute, candidate_ways, choose, way_timer
from compute.trial import ways_that_run
from training.distributed import any_rank
from training.step import NonFiniteGuard
from training.trial import CHILD, timing_nets, trial_spec
from utils.device import cpu_flags, to_model_input
from utils.errors import warn


def training_step_in(generator, discriminator, a, b, weights, device, train_step):
    """prepare(way) for the way timer: one training step (`train_step`, the mode's) of copies of the
    networks computing in `way` (a step that is not finite raises NonFiniteLoss when it ends, so
    that way is never chosen)."""
    def prepare(way):
        g, d = (copy.deepcopy(m).to(memory_format=way.memory_format) if m is not None else None for m in (generator, discriminator))
        copies = timing_nets(g, d, device, way.amp)
        x, y = to_model_input(a, device, way.channels_last), to_model_input(b, device, way.channels_last)
        guard = NonFiniteGuard(device)

        def step():
            train_step(copies, x, y, weights, device, way.amp, guard)
            guard.raise_if_tripped()

        return step

    return prepare


def choose_compute(spec, generator, discriminator, a, b, weights, device, ranks, train_step):
    """The Compute the run `spec` trains with: its networks (`discriminator` may be None) timed in
    steps of the mode (`train_step`) on `a`, `b`, a uint8 batch (B, T, H, W, 3)."""
    ways = candidate_ways(*spec.compute, device, quiet=not ranks.is_main)
    compute = None
    if ranks.is_main:
        flags = spec.flags
        plugins = [choice.source["sha256"] for choice in (spec.generator, spec.discriminator) if choice and choice.source]
        job = {"mode": flags["mode"], "network": flags["network"], "generator": dict(spec.generator.args), "clip": list(a.shape),
               "discriminator": [flags["gan_loss"], flags["disc"], spec.discriminator and dict(spec.discriminator.args)],
               "sources": plugins}  # an edited plug-in is timed again
        ways, broken = ways_that_train(ways, spec, a.shape[:4], weights, device, job)
        compute = choose(ways, job_key(device, job="train", asked=list(spec.compute), **job),
                         way_timer(ways, training_step_in(generator, discriminator, a, b, weights, device, train_step), device))
        if broken:
            compute = dataclasses.replace(compute, note=f"{failures(broken)} in a trial step here; {compute.note}")
    if ranks.distributed:  # every rank takes rank 0's way
        amp, channels_last = any_rank([ranks.is_main and compute.amp, ranks.is_main and compute.channels_last], ranks)
        compute = compute if ranks.is_main else Compute(amp, channels_last, "as rank 0 chose")
    return compute


def ways_that_train(ways, spec, clip_shape, weights, device, job):
    """(the ways of `ways` that can train here, {way name: how it failed}). On a CPU with AMX the
    bfloat16 ways are tried in a child process first, once per machine and job (kept in the
    compute cache); when none of the ways asked for survives, float32 in their layouts."""
    if device.type != "cpu" or "amx_bf16" not in cpu_flags()[1] or not any(way.amp for way in ways):
        return ways, {}
    child_job = trial_spec(spec, clip_shape, weights)
    both_layouts = [Compute(True, False), Compute(True, True)]  # whatever was asked, so that the record serves every run
    broken = remembered(job_key(device, job="bf16 trial", **job), lambda: ways_that_run(both_layouts, child_job, CHILD)[1])
    broken = {way.name: broken[way.name] for way in ways if way.name in broken}
    usable = [way for way in ways if way.name not in broken]
    if not usable:
        usable = list(dict.fromkeys(Compute(False, way.channels_last) for way in ways))
        warn("--amp", f"bfloat16 training steps of these networks at this clip shape fail on this CPU "
                      f"({failures(broken)}); training in float32")
    return usable, broken


def failures(broken):
    """{way name: how it failed} in words: 'bf16 contiguous and bf16 channels_last died (SIGSEGV)'."""
    names = {}
    for name, how in broken.items():
        names.setdefault(how, []).append(name)
    return "; ".join(f"{' and '.join(group)} {how}" for how, group in names.items())
