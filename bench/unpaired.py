"""Unpaired translation on a task whose answer is known. Side A is shots of scikit-image's
photographs (bench/footage.py's pans and zooms) under a fixed, invertible colour grade (a 3x3
colour matrix, then a gamma); side B is other shots of the same photographs, along other camera
paths, ungraded. No frame of A is ever aligned with one of B, yet the right A -> B answer is known:
A's own frames before the grade. Each way is trained for the same steps with the same network,
then scored on A's held-out frames against that answer:
  identity (the graded frames taken as the answer), --mode cycle, --mode recycle, and the paired
  default (trained on the aligned graded -> ungraded pairs of A: the ceiling).

    python -m bench.unpaired                        # 300 steps each, 32x32, a small U-Net: 15 minutes on 2 cores
    python -m bench.unpaired --steps 1000 --size 64 --network-flags "--channels 16 --depth 3"
"""
import shlex
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data

from bench.footage import PHOTOS, render_shot
from bench.quality import run_main
from datasets.build import build_dataset, build_unpaired, paired_sources
from media.encode import VideoWriter
from utils.device import machine_summary
from utils.size import Size

GRADE_MATRIX = np.array([[0.55, 0.35, 0.10],  # each output channel a mix of the input's: a strong cast that
                         [0.10, 0.60, 0.30],  # keeps white white (rows sum to 1) and is invertible
                         [0.30, 0.05, 0.65]])
GRADE_GAMMA = 1.7  # and darker mid-tones
SHOT_PHOTOS = PHOTOS[:4]
B_PATHS = 100  # side B's camera paths are seeded apart from side A's
NETWORK_FLAGS = "-pool 4 --step 2 -batch 4 --channels 8 --depth 2 --d-channels 8 --d-layers 2"  # what fits 15 minutes on 2 cores


def grade(frames):
    """uint8 frames (..., 3) under the fixed colour grade: (M x) ** gamma, in [0, 1]."""
    x = frames.astype(np.float64) / 255.0
    graded = np.clip(x @ GRADE_MATRIX.T, 0.0, 1.0) ** GRADE_GAMMA
    return np.rint(graded * 255.0).astype(np.uint8)


def write_video(path, frames, fps=25):
    with VideoWriter(path, fps, crf=0) as writer:  # lossless: the grade is all that differs
        writer.write(frames)
    return path


def known_answer_footage(folder, size, frames, photos=SHOT_PHOTOS):
    """{"graded": A's videos, "answer": the same frames ungraded, "b": B's videos}, one shot per photograph each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos = {"graded": [], "answer": [], "b": []}
    for seed, name in enumerate(photos):
        photo = getattr(skimage.data, name)()
        photo = np.repeat(photo[..., None], 3, -1) if photo.ndim == 2 else photo[..., :3]
        shot = render_shot(photo, size, frames, seed)
        videos["answer"].append(write_video(folder / f"{name}_a.mp4", shot))
        videos["graded"].append(write_video(folder / f"{name}_a_graded.mp4", grade(shot)))
        videos["b"].append(write_video(folder / f"{name}_b.mp4", render_shot(photo, size, frames, B_PATHS + seed)))
    return videos


def known_answer_data(folder, size, frames, val_fraction=0.25, photos=SHOT_PHOTOS):
    """(the unpaired dataset: graded A against B; the paired one: graded A -> its answer), built in
    `folder`; A's held-out frames are the same in both."""
    folder = Path(folder)
    videos = known_answer_footage(folder / "footage", size, frames, photos)
    unpaired, answer = folder / "unpaired", folder / "answer"
    build_unpaired(unpaired, videos["graded"], videos["b"], size, val_fraction=val_fraction, overwrite=True)
    build_dataset(answer, paired_sources(list(zip(videos["graded"], videos["answer"]))), size, val_fraction=val_fraction,
                  overwrite=True)
    return unpaired, answer


def train_and_score(work, name, data, answer, steps, flags):
    """{"name", "seconds", "scores"}: train on `data`, then evaluate A -> B on the answer's held-out frames."""
    started = time.perf_counter()
    run_main("train", "--data", data, "--max-steps", steps, "--epochs", 10 ** 6, "--sample-every", 10 ** 6, "--name", name,
             *flags, cwd=work)
    seconds = time.perf_counter() - started
    result = json.loads(run_main("evaluate", "--checkpoint", work / "checkpoints" / name, "--data", answer, "--json", cwd=work).stdout)
    return {"name": name, "seconds": seconds, "scores": result["scores"]}


def table(rows):
    identity = rows[0]["scores"]
    lines = [f"{'':<22}{'PSNR':>8}{'SSIM':>8}{'flicker':>9}{'train s':>9}",
             f"{'identity':<22}{identity['psnr_identity']:>8.2f}{identity['ssim_identity']:>8.3f}"
             f"{identity['flicker_identity']:>9.3f}{'':>9}"]
    for row in rows:
        s = row["scores"]
        lines.append(f"{row['name']:<22}{s['psnr']:>8.2f}{s['ssim']:>8.3f}{s['flicker']:>9.3f}{row['seconds']:>9.0f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=48, help="frames per shot")
    parser.add_argument("--network-flags", default=NETWORK_FLAGS, help="train flags of every way: the same network and clips")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        unpaired, answer = known_answer_data(work / "data", Size(args.size, args.size), args.frames)
        ways = [("cycle", unpaired, ["--mode", "cycle"]), ("recycle", unpaired, ["--mode", "recycle"]),
                ("paired (the ceiling)", answer, [])]
        rows = [train_and_score(work, name.split()[0], data, answer, args.steps, [*flags, *shlex.split(args.network_flags)])
                for name, data, flags in ways]
    rows[-1]["name"] = ways[-1][0]
    print(machine_summary())
    print(f"{len(SHOT_PHOTOS)} shots a side of {args.frames} frames at {args.size}x{args.size}, the last quarter of each held out; "
          f"{args.steps} steps each; train flags: {args.network_flags}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(table(rows))
    cycle, recycle, ceiling = (row["scores"] for row in rows)
    print(f"cycle: {cycle['psnr'] - cycle['psnr_identity']:+.2f} dB over identity (target +6), "
          f"{cycle['psnr'] - ceiling['psnr']:+.2f} dB from the paired ceiling (target within 3); "
          f"recycle: flicker {recycle['flicker']:.3f} against cycle's {cycle['flicker']:.3f} "
          f"at {recycle['psnr'] - cycle['psnr']:+.2f} dB (target: lower, at no more than 0.5 dB cost)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
