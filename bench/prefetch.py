"""Training steps per second with the input pipeline preparing the next batch during the step
(prefetch) against preparing it in turn, for a small network, in the same run. The gain is where
the device is fast and the host slow: on a GPU (train prefetches there). On a CPU the step
itself uses every core, and preparing the next batch beside it only competes with it.
    python -m bench.prefetch                    # CUDA when present, else the CPU
    python -m bench.prefetch --device cpu
"""
import argparse
import statistics
import time

import numpy as np
import torch

from compute.precision import grad_scaler
from datasets.pipeline import InputPipeline
from datasets.slider import ClipSlider
from networks import build_generator
from networks.discriminator import PatchDiscriminator3D
from training.step import LossWeights, Nets, NonFiniteGuard, gan_step
from utils.device import machine_summary, pick_device


def nets_on(device):
    torch.manual_seed(0)
    g = build_generator("unet", channels=8, depth=2).to(device)
    d = PatchDiscriminator3D(channels=8, layers=2).to(device)
    return Nets.around(g, d, grad_scaler(device, False), lr=1e-3)


def steps_per_second(pipeline, nets, device, epoch, steps):
    batches = pipeline.epoch(epoch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    guard = NonFiniteGuard(device)
    for _, (x, y, _motion) in zip(range(steps), batches):
        gan_step(nets, x, y, LossWeights(), device, False, guard)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    batches.close()
    return steps / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    device = pick_device(args.device)
    frames = np.random.default_rng(0).integers(0, 256, (2000, args.size, args.size, 3), dtype=np.uint8)
    slider = ClipSlider(frames, frames[::-1].copy(), [(0, 2000)], clip_frames=9, stride=1, batch_size=16, seed=0, flip=True)
    ways = {"prefetch": InputPipeline(slider, device, prefetch=True), "in turn": InputPipeline(slider, device, prefetch=False)}
    nets = nets_on(device)
    rates = {name: [] for name in ways}
    for round_number in range(args.rounds + 1):
        for name, pipeline in ways.items():
            rate = steps_per_second(pipeline, nets, device, round_number, args.steps)
            if round_number:  # the first round warms up
                rates[name].append(rate)
    print(machine_summary())
    print(f"device {device}; unet depth 2, 8 channels; batch 16 of 9 x {args.size} x {args.size} with flips; "
          f"median of {args.rounds} alternating rounds of {args.steps} steps")
    base = statistics.median(rates["in turn"])
    for name, values in rates.items():
        print(f"{name:<10}{statistics.median(values):>8.2f} steps/s{statistics.median(values) / base:>8.2f}x")


if __name__ == "__main__":
    main()
