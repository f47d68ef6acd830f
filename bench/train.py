"""Training speed by precision, memory layout and convolution, against the step as it was before
(float32, contiguous, torch's InstanceNorm3d, a discriminator with instance norm), in the same run.

For `-net unet` and `-net resnet` at the train defaults (64 x 64, pool 9, batch 5, dcgan + L1),
it times the real training step (training/step.py) in each way, alternating them in rounds
because the machine's speed drifts, and prints medians: seconds per step, clips per second,
GFLOP per step (counted by torch.utils.flop_counter) and achieved GFLOP/s. bfloat16 rows appear
only where the CPU computes it natively. One more row adds the temporal loss at train's default
weight to the float32 contiguous 3d step (on a flow of zeros, every pixel kept: its cost does not
depend on the values), and a line says what it costs. It also prints which way
`--memory-format auto --amp auto` would choose from these numbers, and a 3x3x3 conv3d layer alone
as the machine's peak. It ends with the default step (the demo's and the guide's (2+1)D U-Net,
bench/step_profile.py) in the way auto picks: how near it comes to its own convolutions' rate, and
with --profile where its time goes.
    python -m bench.train
    python -m bench.train --networks '' --profile      # the default step alone, with its profile
    python -m bench.train --device cuda      # a GPU (bench/gpu.py checks the rest of what runs there)
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m bench.train    # an AVX2-only CPU, approximately
"""
import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from bench.step_profile import StepWay, auto_way, conv_calls, convolutions_alone, profile_rows, step_flops
from cli.train_flags import default_flags
from commands.demo import NETWORK
from compute.choice import Compute, fastest
from compute.precision import amp_pays_here
from datasets.slider import ClipSlider
from networks import build_generator
from networks.discriminator import PatchDiscriminator3D
from networks.layers import InstanceNorm3d
from training.from_flags import discriminator_args
from utils.device import machine_summary, pick_device

NETWORKS = {"unet": {"channels": 16, "depth": 4}, "resnet": {"channels": 16, "blocks": 6, "downsample": 2}}


def with_torch_instance_norm(module):
    """The module with every InstanceNorm3d swapped for torch's nn.InstanceNorm3d (the step before)."""
    for name, child in module.named_children():
        if isinstance(child, InstanceNorm3d):
            replacement = nn.InstanceNorm3d(child.weight.numel(), affine=True)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            with_torch_instance_norm(child)
    return module


class Way(StepWay):
    """A built-in network at the bench's size against the train defaults' discriminator, computing one way."""

    def __init__(self, network, conv, compute, device, before=False, temporal=0.0):
        torch.manual_seed(0)
        g = build_generator(network, conv=conv, **NETWORKS[network])
        # The discriminator of the train defaults; the step before had instance norm where it now has spectral norm.
        d = PatchDiscriminator3D(**{**discriminator_args(default_flags()), "conv": conv, "spectral_norm": not before})
        if before:
            g, d = with_torch_instance_norm(g), with_torch_instance_norm(d)
        super().__init__(g, d, compute, device, temporal)
        self.conv, self.before = conv, before
        self.name = (f"{conv} {compute.name}" + (", torch InstanceNorm3d (before)" if before else "")
                     + (f", temporal loss {temporal:g}" if temporal else ""))


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conv_peak(device, repeats=5):
    """GFLOP/s of one 32 -> 32 channel 3x3x3 conv3d (forward and backward) on (5, 32, 9, 32, 32),
    the shape of a U-Net's second level, in each dtype; the best layout counts."""
    flops = 3 * 2 * 32 * 32 * 27 * 5 * 9 * 32 * 32  # forward, and backward for input and weight
    results = {}
    for dtype in (torch.float32,) + ((torch.bfloat16,) if amp_pays_here(device) else ()):
        best = 0.0
        for layout in (torch.contiguous_format, torch.channels_last_3d):
            conv = torch.nn.Conv3d(32, 32, 3, padding=1).to(device, dtype=dtype, memory_format=layout)
            x = torch.randn(5, 32, 9, 32, 32, dtype=dtype, device=device).contiguous(memory_format=layout).requires_grad_()
            times = []
            for _ in range(repeats + 1):
                synchronize(device)
                started = time.perf_counter()
                conv(x).sum().backward()
                synchronize(device)
                times.append(time.perf_counter() - started)
            best = max(best, flops / statistics.median(times[1:]) / 1e9)
        results[str(dtype).replace("torch.", "")] = best
    return results


def ways_for(network, convs, device):
    amps = [False, True] if amp_pays_here(device) else [False]
    computes = [Compute(amp, channels_last) for amp in amps for channels_last in (False, True)]
    return ([Way(network, "3d", computes[0], device, before=True)] + [Way(network, conv, c, device) for conv in convs for c in computes]
            + ([Way(network, "3d", computes[0], device, temporal=default_flags()["temporal"])] if "3d" in convs else []))


def bench_network(network, convs, slider, rounds, steps, device):
    ways = ways_for(network, convs, device)
    flops = {conv: step_flops(Way(network, conv, Compute(False, False), device), slider) for conv in convs}
    for way in ways:  # warm-up: oneDNN picks and caches its kernels on first use
        way.step(slider, 0, 0)
    times = {way.name: [] for way in ways}
    for round_number in range(rounds):
        for way in ways:
            synchronize(device)
            started = time.perf_counter()
            for number in range(steps):
                way.step(slider, number, round_number + 1)
            synchronize(device)
            times[way.name].append((time.perf_counter() - started) / steps)
    seconds = {name: statistics.median(values) for name, values in times.items()}
    before = seconds[ways[0].name]
    print(f"-net {network}: " + ", ".join(f"{conv} {flops[conv] / 1e9:.1f} GFLOP per step" for conv in convs) + " (G and D, forward and backward)")
    print(f"  {'way':<52}{'s/step':>8}{'clips/s':>9}{'GFLOP/s':>9}{'vs before':>11}")
    for way in ways:
        s = seconds[way.name]
        print(f"  {way.name:<52}{s:>8.3f}{5 / s:>9.2f}{flops[way.conv] / s / 1e9:>9.0f}{before / s:>10.2f}x")
    plain = [way for way in ways[1:] if not way.temporal]
    for conv in convs:
        mine = [way for way in plain if way.conv == conv]
        best = mine[fastest([w.compute for w in mine], [seconds[w.name] for w in mine])]
        print(f"  auto would train {conv} as {best.compute.name}: {before / seconds[best.name]:.2f}x the step before")
    if len(convs) == 2:
        best3d, best21 = (min(seconds[w.name] for w in plain if w.conv == conv) for conv in convs)
        print(f"  2plus1d against 3d, each in its fastest way: {best3d / best21:.2f}x the clips per second")
    if ways[-1].temporal:
        without = next(way for way in plain if way.conv == "3d" and way.compute == ways[-1].compute)
        print(f"  the temporal loss adds {seconds[ways[-1].name] / seconds[without.name] - 1:+.1%} to the {without.name} step")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per way per round (after one warm-up step)")
    parser.add_argument("--networks", default="unet,resnet")
    parser.add_argument("--convs", default="3d,2plus1d")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--profile", action="store_true", help="also where the default step's time goes (torch.profiler)")
    args = parser.parse_args()
    device = pick_device(args.device)
    frames = np.random.default_rng(0).integers(0, 256, (400, 64, 64, 3), dtype=np.uint8)
    slider = ClipSlider(frames, frames[::-1].copy(), [(0, 400)], clip_frames=9, stride=3, batch_size=5, seed=0)
    print(machine_summary())
    print(f"64x64, pool 9, batch 5, dcgan + L1; median of {args.rounds} alternating rounds of {args.steps} steps")
    peak = conv_peak(device)
    print("conv3d layer peak (fwd+bwd): " + ", ".join(f"{dtype} {rate:.0f} GFLOP/s" for dtype, rate in peak.items()) + "\n")
    for network in filter(None, args.networks.split(",")):  # --networks '': the default step alone
        bench_network(network, args.convs.split(","), slider, args.rounds, args.steps, device)
    default_step(slider, device, args, peak)


def default_step(slider, device, args, peak):
    """The default step in its automatic way against its convolutions, each timed alone (and its profile)."""
    way, seconds, ways = auto_way(slider, device, args.rounds, args.steps)
    print("the default step (" + NETWORK["conv"] + f" U-Net, depth {NETWORK['depth']}, {NETWORK['channels']} channels; the demo's): "
          + ", ".join(f"{name} {s:.3f} s" for name, s in ways.items()) + f"; auto: {way.compute.name}")
    alone = convolutions_alone(conv_calls(way, slider), way)
    kinds = {}
    for kind, s, gflop in alone:
        count, total_s, total_gflop = kinds.get(kind, (0, 0.0, 0.0))
        kinds[kind] = (count + 1, total_s + s, total_gflop + gflop)
    print(f"  {'its convolutions, each alone (fwd+bwd)':<42}{'calls':>6}{'ms':>9}{'GFLOP':>8}{'GFLOP/s':>9}")
    for kind, (count, s, gflop) in sorted(kinds.items(), key=lambda item: -item[1][1]):
        print(f"  {kind:<42}{count:>6}{s * 1e3:>9.1f}{gflop:>8.2f}{gflop / s:>9.0f}")
    conv_seconds, conv_gflop = sum(s for _, s, _ in alone), sum(g for _, _, g in alone)
    flops = step_flops(way, slider)
    dtype = "bfloat16" if way.compute.amp else "float32"
    print(f"  the step: {seconds * 1e3:.0f} ms, {flops / 1e9:.1f} GFLOP ({conv_gflop:.1f} in convolutions), {flops / seconds / 1e9:.0f} GFLOP/s, "
          f"{flops / seconds / 1e9 / peak[dtype]:.0%} of the 3x3x3 layer's {dtype} peak; its convolutions alone: {conv_seconds * 1e3:.0f} ms")
    print(f"the default step reaches {conv_seconds / seconds:.0%} of its convolutions' own rate ({way.compute.name})")
    if args.profile:
        kinds, parts, profiled = profile_rows(way, slider)
        print(f"\nprofile of the default step ({way.compute.name}; torch.profiler, {profiled * 1e3:.0f} ms per step under it):")
        for title, table in (("by kind of work", kinds), ("by part of the step", parts)):
            print(f"  {title}:")
            for name, s in table.items():
                print(f"    {name:<66}{s * 1e3:>8.1f} ms {s / profiled:>6.1%}")


if __name__ == "__main__":
    main()
