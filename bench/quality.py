"""What a user can expect, task by task: each derived pair is built from footage with real texture
(bench/footage.py: pans and zooms over scikit-image's photographs, 6 shots of 48 frames at 48x48,
the last quarter of each held out), trained for a fixed number of steps with the default flags, and scored on the held-out
frames next to the identity baseline (the input itself taken as the answer).
    python -m bench.quality                               # every task, default flags
    python -m bench.quality --tasks blur,noise --train-flags "--conv 2plus1d"
"""
import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

from bench import run_main
from bench.footage import natural_shots
from datasets.build import build_dataset, derived_sources
from utils.device import machine_summary
from utils.size import Size

TASKS = ("gray", "edges", "blur", "lowres", "noise", "compress:40", "future:2")
RESTORATION = ("blur", "lowres", "noise", "compress:40")  # where the input is already close: the target is +0.5 dB



def measure(task, shots, size, work, steps, train_flags):
    """{"task", "steps", "seconds", "warnings", "scores"}: train on the task's pair for `steps`, evaluate held out."""
    data = work / "data" / task.replace(":", "")
    build_dataset(data, derived_sources(shots, task), size, val_fraction=0.25, overwrite=True, quiet=True)
    name = task.replace(":", "")
    started = time.perf_counter()
    trained = run_main("train", "--data", data, "--max-steps", steps, "--epochs", 10 ** 6, "--sample-every", 10 ** 6,
                       "--name", name, *train_flags, cwd=work)
    seconds = time.perf_counter() - started
    warnings = sum(line.startswith("warning:") for line in trained.stderr.splitlines())  # the watchdog's, or any other
    result = json.loads(run_main("evaluate", "--checkpoint", work / "checkpoints" / name, "--json", "--metrics", "jod", cwd=work).stdout)
    return {"task": task, "steps": steps, "seconds": seconds, "warnings": warnings, "scores": result["scores"]}


def ratio(value):
    return "-" if value is None else f"{value:.2f}"


def table(rows):
    lines = [f"{'task':<13}{'PSNR':>8}{'identity':>10}{'gain':>8}{'JOD':>7}{'identity':>10}{'SSIM':>8}{'identity':>10}{'flicker':>9}{'identity':>10}"
             f"{'steps':>7}{'train s':>9}{'warnings':>10}"]
    for row in rows:
        s = row["scores"]
        lines.append(f"{row['task']:<13}{s['psnr']:>8.2f}{s['psnr_identity']:>10.2f}{s['psnr'] - s['psnr_identity']:>+8.2f}"
                     f"{s['jod']:>7.2f}{s['jod_identity']:>10.2f}"
                     f"{s['ssim']:>8.3f}{s['ssim_identity']:>10.3f}{ratio(s['flicker']):>9}{ratio(s['flicker_identity']):>10}"
                     f"{row['steps']:>7}{row['seconds']:>9.0f}{row['warnings']:>10}")
    return "\n".join(lines)


def task_arguments(description):
    """The parser of a bench over the tasks: --tasks, --steps, --size (bench/temporal.py has them too)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=48, help="frame side in pixels")
    return parser


def main():
    parser = task_arguments(__doc__)
    parser.add_argument("--train-flags", default="", help="more train flags, e.g. \"--conv 2plus1d\" (default: none, the defaults)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = Size(args.size, args.size)
        shots = natural_shots(work / "footage", frames=48, size=size)
        rows = [measure(task, shots, size, work, args.steps, shlex.split(args.train_flags)) for task in args.tasks.split(",")]
    print(machine_summary())
    print(f"6 shots of 48 frames at {args.size}x{args.size}, the last quarter of each held out; train flags: "
          f"{args.train_flags or '(defaults)'}; {args.steps} steps each; {time.perf_counter() - started:.0f} s in all")
    print(table(rows))
    short = [r["task"] for r in rows if r["task"] in RESTORATION and r["scores"]["psnr"] - r["scores"]["psnr_identity"] < 0.5]
    below = [r["task"] for r in rows if r["scores"]["psnr"] <= r["scores"]["psnr_identity"]]
    print(f"restoration tasks under +0.5 dB: {', '.join(short) or 'none'}; tasks not above identity: {', '.join(below) or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
