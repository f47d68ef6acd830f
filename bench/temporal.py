"""Flicker, task by task: the quality benchmark's tasks and footage (bench/quality.py), scored in
time as well as in space.

Five shots of the footage make each task's dataset (with the target's optical flow; the last
quarter of each shot held out); the sixth shot is never trained on, and is the video `compare`
runs over. Each task trains twice for the same steps: with --ema (the average is a shadow copy and
does not change what trains, so that run's trained weights are the defaults' run) and with
--temporal. Rows, on the held-out windows (`evaluate`):
  defaults        the defaults' trained weights
  --ema D         the same run's average of the weights
  --temporal W    the run with the temporal loss
and on the unseen shot (`compare`, the defaults' weights), the ways to run windows over a video:
  pool, hard      windows of -pool frames, each frame from the window centred nearest (before blending)
  pool, blended   the same windows, blended where they overlap (compare's default)
  window N        longer windows than -pool, blended
The flicker ratio is the masked warping error over the target's own; the seam ratio is the error
where the window switches over the error inside windows, each relative to the target's.
    python -m bench.temporal                              # every task
    python -m bench.temporal --tasks edges,noise --temporal 5 --ema 0.99 --steps 150
"""
import json
import tempfile
import time
from pathlib import Path

from bench.footage import natural_shots
from bench.quality import run_main, task_arguments
from datasets.build import build_dataset, derived_sources
from utils.device import machine_summary
from utils.size import Size

COLUMNS = (("psnr", "PSNR", 7, 2), ("ssim", "SSIM", 7, 3), ("masked_warp_error", "warp", 8, 4), ("tof", "tOF", 6, 2),
           ("flicker", "flicker", 8, 2), ("seam", "seam", 6, 2))


def evaluated(work, name, *flags):
    return json.loads(run_main("evaluate", "--checkpoint", work / "checkpoints" / name, "--json", *flags, cwd=work).stdout)["scores"]


def compared(work, name, video, *flags):
    out = work / f"{name}_{len(list(work.glob('*_compare*.mp4')))}_compare.mp4"
    run_main("compare", "--checkpoint", work / "checkpoints" / name, "--video", video, "-o", out, "--weights", "trained", *flags, cwd=work)
    return json.loads(out.with_suffix(".json").read_text())["scores"]


def measure(task, shots, size, work, args):
    """[(row label, scores)] for one task, and the seconds its two trainings took."""
    data = work / "data" / task.replace(":", "")
    build_dataset(data, derived_sources(shots[:-1], task), size, val_fraction=0.25, overwrite=True, quiet=True, flow=True)
    name = task.replace(":", "")
    common = ["--data", data, "--max-steps", args.steps, "--epochs", 10 ** 6, "--sample-every", 10 ** 6, "--seed", args.seed]
    started = time.perf_counter()
    run_main("train", *common, "--ema", args.ema, "--name", name, cwd=work)
    run_main("train", *common, "--temporal", args.temporal, "--name", name + "_temporal", cwd=work)
    seconds = time.perf_counter() - started
    rows = [("defaults", evaluated(work, name, "--weights", "trained")), (f"--ema {args.ema:g}", evaluated(work, name)),
            (f"--temporal {args.temporal:g}", evaluated(work, name + "_temporal"))]
    pool = 9  # train's default -pool
    rows += [(f"compare: pool {pool}, hard", compared(work, name, shots[-1], "--no-blend")),
             (f"compare: pool {pool}, blended", compared(work, name, shots[-1]))]
    rows += [(f"compare: window {window}", compared(work, name, shots[-1], "--window", window)) for window in args.windows]
    return rows, seconds


def cell(value, width, digits):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def table(results):
    lines = [f"{'task':<13}{'way':<26}" + "".join(f"{label:>{width}}" for _, label, width, _ in COLUMNS) + f"{'identity PSNR':>15}"]
    for task, rows, _ in results:
        for label, scores in rows:
            lines.append(f"{task:<13}{label:<26}" + "".join(cell(scores.get(key), width, digits) for key, _, width, digits in COLUMNS)
                         + cell(scores.get("psnr_identity"), 15, 2))
    return "\n".join(lines)


def main():
    parser = task_arguments(__doc__)
    parser.add_argument("--temporal", type=float, default=5.0, help="the --temporal weight to measure")
    parser.add_argument("--ema", type=float, default=0.99, help="the --ema decay to measure")
    parser.add_argument("--windows", default="18", help="longer compare windows to measure, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    args.windows = [int(w) for w in args.windows.split(",") if w]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = Size(args.size, args.size)
        shots = natural_shots(work / "footage", frames=48, size=size)
        results = [(task, *measure(task, shots, size, work, args)) for task in args.tasks.split(",")]
    print(machine_summary())
    print(f"5 shots of 48 frames at {args.size}x{args.size} (the last quarter of each held out) to train on, a sixth to compare on; "
          f"{args.steps} steps, seed {args.seed}; {time.perf_counter() - started:.0f} s in all")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([{"task": t, "rows": rows, "train_seconds": s} for t, rows, s in results], indent=2))


if __name__ == "__main__":
    main()
