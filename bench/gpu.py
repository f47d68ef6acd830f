"""The GPU check: what vgan does on one CUDA GPU, in under ten minutes. Each section prints beside
its own baseline from the same run.

1. The machine: GPU, CUDA and cuDNN, bfloat16 in hardware or not, TF32.
2. Training speed: steps/s, clips/s, the GPU's busy share (nvidia-smi, sampled) and the allocator's
   peak, in each precision and layout, with the next batch prefetched and without, for the train
   defaults (64x64, batch 5) and a GPU-sized job (192x192 crops, batch 8, 32 channels). The same
   steps run once more with CUDA's sync checker set to error: a step that waits for the host fails.
3. Learning at equal steps: the train defaults on a blur pair of natural footage in float32,
   bfloat16 (where in hardware) and float16 with its gradient scaler, scored on held-out frames.
4. Reproducibility: two identical --deterministic runs, and two without, compared bit for bit.
5. Inference memory: the probe's prediction against the allocator's peak for one window of whole
   720p, 1080p and 4K frames; 4K in a forced 1 GB budget; tiled against whole frames (PSNR, and time
   per output pixel) in float32 and bfloat16.

    python -m bench.gpu                       # on a machine with a CUDA GPU; elsewhere it says so and exits 0
    python -m bench.gpu --device cpu --quick  # every section at toy sizes on a CPU: checks the script, measures nothing
"""
import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from bench.footage import natural_shots
from cli.train_flags import default_flags
from compute import precision
from compute.choice import candidate_ways
from utils.gpus import visible_gpus
from datasets.build import build_dataset, derived_sources
from datasets.pipeline import InputPipeline
from datasets.slider import ClipSlider
from inference.generate import ClipGenerator
from inference.tiles import fit_tiling, forward_cost
from networks import build_discriminator, build_generator
from runfolder.checkpoint import load_checkpoint
from training.loop import train
from training.step import LossWeights, Nets, NonFiniteGuard, gan_step
from training.tally import LossTally
from utils.device import machine_summary
from utils.memory import human_bytes
from metrics.scores import mean_psnr
from utils.size import Size

JOBS = {  # name: (frame side, crop side or None, batch, generator arguments)
    "train defaults": (64, None, 5, {"channels": 16, "depth": 4}),
    "GPU-sized": (256, 192, 8, {"channels": 32, "depth": 4}),
}
QUICK_JOBS = {"toy": (32, None, 2, {"channels": 4, "depth": 2})}
QUICK_FLAGS = {"channels": 4, "depth": 2, "d_channels": 4, "d_layers": 2, "pool": 4, "step": 2}  # train flags at toy sizes
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
INFERENCE_NETWORK = {"channels": 16, "depth": 3, "conv": "2plus1d"}  # the demo's generator


def header(device):
    print(machine_summary())
    if device.type != "cuda":
        print("device: cpu (a check of this script; nothing here is a GPU figure)")
        print(conv3d_paths(device, shape=(1, 8, 5, 16, 16), rounds=1))
        return
    props = torch.cuda.get_device_properties(device)
    print(f"GPU: {props.name}, compute capability {props.major}.{props.minor}, {human_bytes(props.total_memory)}; "
          f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    print(f"bfloat16 in hardware: {'yes' if precision.cuda_bf16_in_hardware(device) else 'no (mixed precision is float16)'}; "
          f"TF32: convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, matrix products "
          f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} (torch's defaults; --deterministic turns both off)")
    print(conv3d_paths(device))


SLOW_PATH = 2.0  # a half-precision conv3d this much slower than float32's has left cuDNN


def conv3d_paths(device, shape=(4, 32, 9, 128, 128), rounds=5):
    """One line: a 3x3x3 conv3d's forward and backward in float32 and in each half precision, and
    whether a half precision takes the slow path some torch and cuDNN versions give it (pytorch
    #163581, #166122: bf16 and fp16 conv3d outside cuDNN, about 4x slower). Training's automatic
    choice times each way on the real step, so it never picks a slow one; this says why it did not."""
    conv = torch.nn.Conv3d(shape[1], shape[1], 3, padding=1).to(device)
    x = torch.randn(shape, device=device, requires_grad=True)
    times = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for warm in range(2):
                synchronize(device)
                started = time.perf_counter()
                for _ in range(rounds if warm else 1):
                    conv(x).float().sum().backward()
                synchronize(device)
            times[dtype] = (time.perf_counter() - started) / rounds
    fp32 = times[torch.float32]
    slow = [str(dtype).split(".")[-1] for dtype in (torch.bfloat16, torch.float16) if times[dtype] > SLOW_PATH * fp32]
    words = ", ".join(f"{str(dtype).split('.')[-1]} {seconds * 1e3:.2f} ms" for dtype, seconds in times.items())
    return (f"conv3d 3x3x3 forward and backward on {tuple(shape)}: {words}; "
            + (f"SLOW PATH: {' and '.join(slow)} run over {SLOW_PATH:g}x float32's time (pytorch #163581); the automatic "
               f"choice will not pick them" if slow else "no half precision on the slow path"))


class Utilisation:
    """The GPU's busy share while it runs, sampled from nvidia-smi every 0.1 s on a thread of its own."""

    def __init__(self, device):
        self.samples, self.stop = [], threading.Event()
        self.tool = shutil.which("nvidia-smi") if device.type == "cuda" else None
        # By its UUID: nvidia-smi numbers GPUs in PCI order and ignores CUDA_VISIBLE_DEVICES, which torch's index follows.
        self.gpu = f"GPU-{torch.cuda.get_device_properties(device).uuid}" if self.tool else None
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        command = [self.tool, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", self.gpu]
        while not self.stop.wait(0.1):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode == 0 and done.stdout.strip().isdigit():
                self.samples.append(int(done.stdout.strip()))

    def __enter__(self):
        if self.tool:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.tool:
            self.thread.join()

    def share(self):
        return f"{statistics.mean(self.samples):.0f}%" if self.samples else "-"


def random_slider(side, crop, batch, clip_frames=9, frames=300):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8)
    return ClipSlider(a, a[::-1].copy(), [(0, frames)], clip_frames=clip_frames, stride=3, batch_size=batch, seed=0,
                      crop=Size(crop, crop) if crop else None, flip=True)


def job_nets(generator_args, way, device):
    torch.manual_seed(0)
    generator = build_generator("unet", **generator_args).to(device, memory_format=way.memory_format)
    discriminator = build_discriminator("patch").to(device, memory_format=way.memory_format)
    return Nets.around(generator, discriminator, precision.grad_scaler(device, way.amp), lr=1e-4)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(nets, pipeline, way, device, steps, log_every=10):
    """Steps as the training loop takes them (losses tallied on the device, read every log_every);
    seconds for `steps` after 3 warm-up steps."""
    tally = LossTally(NonFiniteGuard(device))
    batches = pipeline.epoch(0)
    for number in range(3 + steps):
        if number == 3:
            synchronize(device)
            started = time.perf_counter()
        x, y, motion = next(batches)
        tally.add(gan_step(nets, x, y, LossWeights(), device, way.amp, tally.guard, motion=motion))
        if (number + 1) % log_every == 0:
            tally.read_log()
    synchronize(device)
    seconds = time.perf_counter() - started
    batches.close()
    return seconds


def syncs_in_steps(nets, pipeline, way, device, steps=9):
    """'none', or the error CUDA's sync checker raised, over `steps` steps between two log reads."""
    if device.type != "cuda":
        return "not checked on a CPU"
    tally = LossTally(NonFiniteGuard(device))
    batches = pipeline.epoch(1)
    x, y, motion = next(batches)
    tally.add(gan_step(nets, x, y, LossWeights(), device, way.amp, tally.guard, motion=motion))  # warm: allocations done
    torch.cuda.synchronize(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            x, y, motion = next(batches)
            tally.add(gan_step(nets, x, y, LossWeights(), device, way.amp, tally.guard, motion=motion))
        found = "none"
    except RuntimeError as exc:
        found = str(exc).splitlines()[0][:120]
    finally:
        torch.cuda.set_sync_debug_mode("default")
        batches.close()
    return found


def training_speed(device, jobs, steps):
    print(f"\n2. training speed: {steps} steps after 3 of warm-up, dcgan + L1, U-Net and the default PatchGAN")
    print(f"   {'job':<15}{'way':<24}{'prefetch':<10}{'steps/s':>9}{'clips/s':>9}{'GPU busy':>10}{'peak':>11}  syncs in 9 steps")
    for name, (side, crop, batch, generator_args) in jobs.items():
        slider = random_slider(side, crop, batch)
        for label, way, context in ways_to_time(device):
            with context:
                nets = job_nets(generator_args, way, device)
                for prefetch in (True, False):
                    pipeline = InputPipeline(slider, device, way.channels_last, prefetch=prefetch)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    with Utilisation(device) as busy:
                        seconds = run_steps(nets, pipeline, way, device, steps)
                    peak = human_bytes(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else "-"
                    syncs = syncs_in_steps(nets, pipeline, way, device) if prefetch else ""
                    print(f"   {name:<15}{label:<24}{'on' if prefetch else 'off':<10}{steps / seconds:>9.2f}"
                          f"{batch * steps / seconds:>9.1f}{busy.share():>10}{peak:>11}  {syncs}", flush=True)


def as_without_bf16():
    """float16 autocast and a gradient scaler, as on a GPU without bfloat16 in hardware (where auto takes them)."""
    return mock.patch.object(precision, "cuda_bf16_in_hardware", lambda device: False)


def ways_to_time(device):
    """[(label, Compute, the context it runs in)]: each precision the device has, in each layout;
    on a GPU with bfloat16 also float16 with its scaler, which auto never takes there."""
    ways = []
    for way in candidate_ways("auto", "auto", device, quiet=True):
        dtype = str(precision.amp_dtype(device)).removeprefix("torch.") if way.amp else "float32"
        ways.append((dtype, way, contextlib.nullcontext))
    if device.type == "cuda" and precision.cuda_bf16_in_hardware(device):
        ways += [("float16", way, as_without_bf16) for way in candidate_ways("on", "auto", device)]
    return [(f"{dtype} {'channels_last' if way.channels_last else 'contiguous'}", way, context()) for dtype, way, context in ways]


def natural_blur(work, side, quick):
    shots = natural_shots(work / "footage", frames=16 if quick else 48, size=Size(side, side))
    data = work / "data" / "blur"
    build_dataset(data, derived_sources(shots, "blur"), Size(side, side), val_fraction=0.25, overwrite=True, quiet=True)
    return data


def trained(work, data, name, device, steps, quick, **flags):
    config = {**default_flags(), **(QUICK_FLAGS if quick else {}), "data": str(data), "name": name, "checkpoints": str(work / "checkpoints"), "max_steps": steps,
              "epochs": 10 ** 6, "sample_every": 10 ** 6, "device": device.type, "memory_format": "contiguous",
              "perceptual_every": 0, **flags}  # no JOD: its library's seconds of loading would land in the first row's time
    with contextlib.redirect_stdout(sys.stderr):  # the runs' own lines are not the bench's table
        code = train(config)
    if code:
        raise SystemExit(f"training {name} ended with exit code {code}")
    return load_checkpoint(work / "checkpoints" / name)


def last_validation(work, name):
    lines = (work / "checkpoints" / name / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if "val/psnr" in line][-1]


def learning(device, work, quick):
    steps = 20 if quick else 300
    data = natural_blur(work, 32 if quick else 64, quick)
    print(f"\n3. learning at equal steps: the train defaults on blur, natural footage at {32 if quick else 64}x{32 if quick else 64}, "
          f"{steps} steps, held-out frames")
    print(f"   {'precision':<34}{'PSNR':>8}{'identity':>10}{'seconds':>9}")
    runs = [("float32", {"amp": "off"}, contextlib.nullcontext())]
    if device.type == "cuda":
        if precision.cuda_bf16_in_hardware(device):
            runs.append(("bfloat16", {"amp": "on"}, contextlib.nullcontext()))
        runs.append(("float16 with a gradient scaler", {"amp": "on"}, as_without_bf16()))
    for label, flags, context in runs:
        started = time.perf_counter()
        with context:
            trained(work, data, label.split()[0], device, steps, quick, **flags)
        scores = last_validation(work, label.split()[0])
        print(f"   {label:<34}{scores['val/psnr']:>8.2f}{scores['val/psnr_identity']:>10.2f}{time.perf_counter() - started:>9.0f}",
              flush=True)
    return data


def reproducibility(device, work, data, quick):
    steps = 5 if quick else 100
    print(f"\n4. reproducibility: two identical runs of {steps} steps each way, their weights compared bit for bit")
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:  # the default first: --deterministic changes the process's settings for good
        for label, extra in (("default (cuDNN benchmark mode, TF32)", {}), ("--deterministic", {"deterministic": True})):
            states = [trained(work, data, f"repeat_{bool(extra)}_{i}", device, steps, quick, **extra) for i in range(2)]
            same = all(torch.equal(states[0]["generator"][k], states[1]["generator"][k]) for k in states[0]["generator"])
            print(f"   {label:<40}{'bitwise equal' if same else 'differ'}", flush=True)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, matmul_tf32


def peak_of(network, x, device, amp=False):
    """The allocator's peak above what was in use, for one forward pass (after a warm-up pass)."""
    with torch.inference_mode(), precision.autocast(device, amp):
        network(x)
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        network(x)
        synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def timed(function, device):
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - started


def inference(device, quick):
    frames = 4 if quick else 9
    torch.manual_seed(0)
    network = build_generator("unet", **({"channels": 4, "depth": 2} if quick else INFERENCE_NETWORK)).to(device).eval()
    sizes = {"toy": (128, 64)} if quick else SIZES
    fixed, per_pixel = forward_cost(network, frames, device)
    print(f"\n5. inference: U-Net {INFERENCE_NETWORK if not quick else 'toy'}, one window of {frames} frames")
    print(f"   the probe: {human_bytes(fixed)} fixed and {per_pixel:.0f} bytes per pixel of each frame (float32)")
    if device.type == "cuda":
        print(f"   {'size':<8}{'predicted':>12}{'allocator peak':>16}{'predicted / peak':>18}")
        for name, (width, height) in sizes.items():
            x = torch.zeros(1, 3, frames, height, width, device=device)
            actual = peak_of(network, x, device)
            predicted = fixed + per_pixel * width * height
            print(f"   {name:<8}{human_bytes(predicted):>12}{human_bytes(actual):>16}{predicted / actual:>18.2f}", flush=True)
            del x
    width, height = list(sizes.values())[-1]
    budget = 2 ** 21 if quick else 2 ** 30
    clips = np.random.default_rng(0).integers(0, 256, (1, frames, height, width, 3), dtype=np.uint8)
    tiling, expected = fit_tiling(network, (1, frames, height, width), budget, device, cost=(fixed, per_pixel))
    print(f"   {width}x{height} in a forced {human_bytes(budget)}: tiles of {tiling.tile.width}x{tiling.tile.height} with "
          f"{tiling.halo} pixels of context a side, {human_bytes(expected)} expected")
    print(f"   {'precision':<12}{'whole s':>9}{'tiled s':>9}{'tiled / whole':>15}{'tiled peak':>12}{'PSNR tiled vs whole':>21}")
    for amp in ([False, True] if device.type == "cuda" or quick else [False]):
        whole, whole_s = timed(lambda: ClipGenerator(network, device, amp)(clips), device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        tiled, tiled_s = timed(lambda: ClipGenerator(network, device, amp, tiling=tiling)(clips), device)
        peak = human_bytes(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else "-"
        label = str(precision.amp_dtype(device)).removeprefix("torch.") if amp else "float32"
        print(f"   {label:<12}{whole_s:>9.2f}{tiled_s:>9.2f}{tiled_s / whole_s:>15.2f}{peak:>12}{mean_psnr(tiled[0], whole[0]):>21.1f}",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="the GPU to check (cuda, cuda:1, ...); cpu checks this script")
    parser.add_argument("--quick", action="store_true", help="toy sizes, to check that every section runs")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per row (default 60; 5 with --quick)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index:
        # The one GPU asked for, as cuda:0 here and in every run this starts (train picks its device by rank).
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_gpus()[device.index]
        device = torch.device("cuda", 0)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: bench/gpu.py measures a GPU, and there is none here")
        return 0
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # as train and compare have it
    started = time.perf_counter()
    header(device)
    training_speed(device, QUICK_JOBS if args.quick else JOBS, args.steps or (5 if args.quick else 60))
    with tempfile.TemporaryDirectory() as tmp:
        data = learning(device, Path(tmp), args.quick)
        reproducibility(device, Path(tmp), data, args.quick)
    inference(device, args.quick)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
