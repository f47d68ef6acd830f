"""Risky ways tried in a child process before a run may choose them. A crash in a kernel cannot be
caught in the process it happens in, so each bfloat16 way is stepped once in a child; a way whose
child dies, or takes far longer than a float32 step, is left out.

oneDNN's AMX kernel for convolution weight gradients, in the build that torch 2.14 ships (oneDNN
3.12), dies (segmentation fault, abort) or never returns on some clip shapes: on an Intel Xeon
with AMX, 96 x 96 windows of 4 or 8 frames in batches of 5, where other shapes and every forward
pass run. CPUs without AMX compute bfloat16 with other kernels, which ran every shape tried, and
are not tried this way (training/autotune.py decides).

    usable, broken = ways_that_run(ways, spec, child=["python", "-m", "training.trial"])
    # broken: {"bf16 contiguous": "died (SIGSEGV)"}; the child runs step_each_way(spec, step)
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from compute.choice import Compute

ROOT = Path(__file__).resolve().parent.parent
HANG_FACTOR, HANG_SECONDS = 20, 30  # a way has hung after this many float32 steps' time, and at least this long
CHILD_TIMEOUT = 3600  # the child as a whole, should even the float32 step never return


def how_it_ended(done):
    """In words, how a child that did not step every way ended."""
    if done.returncode < 0 and -done.returncode == signal.SIGALRM:
        return f"hung (no step within {HANG_FACTOR} times a float32 step's time, at least {HANG_SECONDS} s)"
    if done.returncode < 0:
        return f"died ({signal.Signals(-done.returncode).name})"
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"failed ({last})"


def ways_that_run(ways, spec, child):
    """(the ways in `ways` that run here, {way name: how it failed}): float32 ways as they are,
    bfloat16 ways only after a step of each ran in a child process (`child`: its command line,
    which reads `spec` with the ways to try on stdin and runs `step_each_way`)."""
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


def step_each_way(spec, step):
    """In the child: time `step(Compute)` in float32 contiguous, then step each way of spec["ways"],
    printing "ok INDEX" after each; SIGALRM ends a way that takes HANG_FACTOR times as long."""
    started = time.perf_counter()
    step(Compute(False, False))
    float32_seconds = time.perf_counter() - started
    for index, (amp, channels_last) in enumerate(spec["ways"]):
        signal.setitimer(signal.ITIMER_REAL, max(HANG_SECONDS, HANG_FACTOR * float32_seconds))  # SIGALRM ends the child
        step(Compute(amp, channels_last))
        signal.setitimer(signal.ITIMER_REAL, 0)
        print("ok", index, flush=True)
