"""Frame slider against a 2018-style loader: batches per second and resident memory growth, same run.

The baseline keeps every frame as a float32 tensor and builds each clip by stacking frames in Python.
The two alternate in rounds (the machine's speed drifts) and medians are reported.
    python -m bench.slider              # 2,000 frames of 64 x 64, pool 9, step 3, batch 5
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datasets.slider import ClipSlider
from datasets.store import load_dataset
from utils.device import machine_summary, to_model_input

REPO = Path(__file__).resolve().parent.parent


def write_dataset(folder, frames, size, seed=0):
    """A dataset folder of random frames, in the same format build-dataset writes."""
    rng = np.random.default_rng(seed)
    for name in ("a.npy", "b.npy"):
        np.save(folder / name, rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
    meta = {"frames": frames, "width": size, "height": size, "segments": [{"start": 0, "stop": frames, "val_start": frames}]}
    (folder / "meta.json").write_text(json.dumps(meta))


def load_baseline(folder):
    """2018 style: one float32 (C, H, W) tensor per frame, in a Python list."""
    frames = {}
    for name in ("a", "b"):
        array = np.load(folder / f"{name}.npy")
        frames[name] = [torch.from_numpy(f).permute(2, 0, 1).float().div(127.5).sub(1) for f in array]
        del array
    return frames["a"], frames["b"]


def baseline_batch(frames_a, frames_b, starts, pool):
    """Stack each clip frame by frame, then the clips: (N, C, T, H, W) floats."""
    clips_a = [torch.stack([frames_a[s + t] for t in range(pool)], dim=1) for s in starts]
    clips_b = [torch.stack([frames_b[s + t] for t in range(pool)], dim=1) for s in starts]
    return torch.stack(clips_a), torch.stack(clips_b)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def measure_memory(folder, variant):
    """Run in a child process: how much resident memory loading the frames adds."""
    before = resident_bytes()
    if variant == "slider":
        ds = load_dataset(folder)
        keep = (ds.a, ds.b)
    else:
        keep = load_baseline(folder)
    after = resident_bytes()
    print(json.dumps({"growth": after - before, "kept": len(keep)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--pool", type=int, default=9)
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches-per-round", type=int, default=300)
    parser.add_argument("--memory-child", nargs=2, metavar=("FOLDER", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return measure_memory(Path(args.memory_child[0]), args.memory_child[1])

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_dataset(folder, args.frames, args.size)
        raw = 2 * args.frames * args.size * args.size * 3
        growth = {}
        for variant in ("slider", "baseline"):
            out = subprocess.run([sys.executable, "-m", "bench.slider", "--memory-child", str(folder), variant], cwd=REPO,
                             capture_output=True, text=True, check=True)
            growth[variant] = json.loads(out.stdout)["growth"]

        ds = load_dataset(folder)
        slider = ClipSlider(ds.a, ds.b, ds.ranges("train"), args.pool, args.step, args.batch, seed=0)
        frames_a, frames_b = load_baseline(folder)
        cpu = torch.device("cpu")
        batches = [w for epoch in range(50) for w in slider.epoch_batches(epoch)]
        variants = {
            "slider (uint8 batch)": lambda w: slider.gather(w),
            "slider + float on CPU": lambda w: [to_model_input(x, cpu) for x in slider.gather(w)],
            "baseline (float list)": lambda w: baseline_batch(frames_a, frames_b, slider.starts[w], args.pool),
        }
        rates = {name: [] for name in variants}
        for round_number in range(args.rounds):
            for name, fn in variants.items():
                chosen = batches[round_number * args.batches_per_round:(round_number + 1) * args.batches_per_round]
                start = time.perf_counter()
                for windows in chosen:
                    fn(windows)
                rates[name].append(len(chosen) / (time.perf_counter() - start))

    base = statistics.median(rates["baseline (float list)"])
    print(machine_summary())
    print(f"{args.frames} frames of {args.size}x{args.size}, pool {args.pool}, step {args.step}, batch {args.batch}; "
          f"median of {args.rounds} alternating rounds, torch threads {torch.get_num_threads()}")
    print(f"{'variant':<24}{'batches/s':>12}{'ms/batch':>10}{'vs baseline':>13}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<24}{rate:>12.0f}{1000 / rate:>10.3f}{rate / base:>12.1f}x")
    print(f"\nresident memory growth on load (raw uint8 frames: {raw / 1e6:.1f} MB)")
    for variant, grown in growth.items():
        print(f"{variant:<24}{grown / 1e6:>9.1f} MB {grown / raw:>6.2f}x raw")


if __name__ == "__main__":
    main()
