"""Training speed by precision and memory layout, against fp32 contiguous, in the same run.

For `-net unet` and `-net resnet` at the train defaults (64 x 64, pool 9, batch 5, dcgan + L1),
it times the real training step (training/step.py) in four modes, alternating them in rounds
because the machine's speed drifts, and prints medians: clips per second, achieved GFLOP/s
(FLOPs counted by torch.utils.flop_counter), the share of a step spent assembling the batch,
and a representative 3x3x3 conv3d layer alone in fp32 and bf16 as the machine's peak.
    python -m bench.train
"""
import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from datasets.slider import ClipSlider
from networks import PatchDiscriminator3D, build_generator
from training.step import LossWeights, Nets, gan_step
from utils.device import grad_scaler, machine_summary, to_model_input

MODES = [("fp32 contiguous", False, False), ("fp32 channels_last", False, True),
         ("bf16 contiguous", True, False), ("bf16 channels_last", True, True)]
NETWORKS = {"unet": {"channels": 16, "depth": 4}, "resnet": {"channels": 16, "blocks": 6, "downsample": 2}}


class Setup:
    """A generator, a discriminator and their optimizers in one memory layout."""

    def __init__(self, network, channels_last):
        torch.manual_seed(0)
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        g = build_generator(network, **NETWORKS[network]).to(memory_format=fmt)
        d = PatchDiscriminator3D(channels=32, layers=3).to(memory_format=fmt)
        adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
        self.nets = Nets(g, g, torch.optim.Adam(g.parameters(), **adam), grad_scaler(torch.device("cpu"), False),
                         d, d, torch.optim.Adam(d.parameters(), **adam))
        self.channels_last = channels_last


def timed_steps(setup, slider, amp, steps, epoch):
    """(seconds per step, seconds per step spent on the batch) over `steps` training steps."""
    cpu = torch.device("cpu")
    data = 0.0
    start = time.perf_counter()
    for number, windows in enumerate(slider.epoch_batches(epoch)[:steps]):
        t0 = time.perf_counter()
        a, b = slider.gather(windows, epoch, number)
        x, y = to_model_input(a, cpu, setup.channels_last), to_model_input(b, cpu, setup.channels_last)
        data += time.perf_counter() - t0
        gan_step(setup.nets, x, y, LossWeights(), cpu, amp)
    total = time.perf_counter() - start
    return total / steps, data / steps


def step_flops(setup, slider):
    a, b = slider.gather(slider.epoch_batches(0)[0])
    cpu = torch.device("cpu")
    x, y = to_model_input(a, cpu), to_model_input(b, cpu)
    with FlopCounterMode(display=False) as counter:
        gan_step(setup.nets, x, y, LossWeights(), cpu, False)
    return counter.get_total_flops()


def conv_peak(repeats):
    """GFLOP/s of one 32 -> 32 channel 3x3x3 conv3d (forward and backward) on (5, 32, 9, 32, 32),
    the shape of a U-Net's second level, in each dtype and layout; the best layout counts."""
    flops = 3 * 2 * 32 * 32 * 27 * 5 * 9 * 32 * 32  # forward, and backward for input and weight
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        best = 0.0
        for fmt in (torch.contiguous_format, torch.channels_last_3d):
            conv = torch.nn.Conv3d(32, 32, 3, padding=1).to(dtype=dtype, memory_format=fmt)
            x = torch.randn(5, 32, 9, 32, 32, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                conv(x).sum().backward()
                times.append(time.perf_counter() - t0)
            best = max(best, flops / statistics.median(times[1:]) / 1e9)
        results[str(dtype).replace("torch.", "")] = best
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode per round (after one warm-up step)")
    parser.add_argument("--networks", default="unet,resnet")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (400, 64, 64, 3), dtype=np.uint8)
    slider = ClipSlider(frames, frames[::-1].copy(), [(0, 400)], pool=9, step=3, batch_size=5, seed=0)
    print(machine_summary())
    print(f"64x64, pool 9, batch 5, dcgan + L1; "
          f"median of {args.rounds} alternating rounds of {args.steps} steps")
    peak = conv_peak(repeats=5)
    print(f"conv3d layer peak (fwd+bwd): fp32 {peak['float32']:.0f} GFLOP/s, bf16 {peak['bfloat16']:.0f} GFLOP/s\n")
    for network in args.networks.split(","):
        setups = {name: Setup(network, channels_last) for name, _, channels_last in MODES}
        flops = step_flops(Setup(network, False), slider)
        for name, amp, _ in MODES:  # warm-up: oneDNN picks and caches its kernels on first use
            timed_steps(setups[name], slider, amp, 1, epoch=0)
        times = {name: [] for name, _, _ in MODES}
        shares = {name: [] for name, _, _ in MODES}
        for round_number in range(args.rounds):
            for name, amp, _ in MODES:
                per_step, data = timed_steps(setups[name], slider, amp, args.steps, epoch=round_number + 1)
                times[name].append(per_step)
                shares[name].append(data / per_step)
        base = statistics.median(times["fp32 contiguous"])
        print(f"-net {network}: {flops / 1e9:.1f} GFLOP per step (G and D, forward and backward)")
        print(f"  {'mode':<20}{'s/step':>8}{'clips/s':>9}{'GFLOP/s':>9}{'vs fp32':>9}{'of bf16 peak':>14}{'batch share':>13}")
        for name, _, _ in MODES:
            per_step = statistics.median(times[name])
            rate = flops / per_step / 1e9
            print(f"  {name:<20}{per_step:>8.3f}{5 / per_step:>9.2f}{rate:>9.0f}{base / per_step:>8.2f}x"
                  f"{rate / peak['bfloat16']:>13.0%}{statistics.median(shares[name]):>13.2%}")
        print()


if __name__ == "__main__":
    main()
