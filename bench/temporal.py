"""Flicker, task by task: the quality benchmark's tasks and footage (bench/quality.py), scored in
time as well as in space.

Five shots of the footage make each task's dataset (with the target's optical flow; the last
quarter of each shot held out); the sixth shot is never trained on, and is the video `compare`
runs over. Each task trains, for each seed, with --ema (the average is a shadow copy and does not
change what trains, so that run's trained weights are the defaults' run) and once more for each
--temporal weight (by default 0: without the temporal loss, which is on by default), all for the
same steps. Rows, on the held-out windows (`evaluate`):
  defaults        the defaults' trained weights
  --ema D         the same run's average of the weights
  --temporal W    the run with the temporal loss at weight W
and on the unseen shot (`compare`, the defaults' weights), the ways to run windows over a video:
  pool, blended   windows of -pool frames, blended where they overlap (compare's default)
  pool, hard      the same windows, each frame from the window centred nearest (with --hard)
  window N        longer windows than -pool, blended (with --windows N)
The flicker ratio is the masked warping error over the target's own; the seam ratio is the error
where the window switches over the error inside windows, each relative to the target's. With two
seeds or more each cell is the mean ± the standard deviation over seeds, and the last columns are
Welch's p for PSNR and the flicker ratio against the defaults (the compare rows: against hard switches, with --hard).
    python -m bench.temporal                              # every task, one seed (about 35 minutes on 2 AVX2 cores)
    python -m bench.temporal --tasks edges,noise --temporal 0,2 --seeds 3 --hard --windows 18
    python -m bench.temporal --table seeds.json tasks.json  # saved runs (--json), printed together
The defaults (32x32 frames, 100 steps) are what the README's table measured: a training of the
default networks there takes 2 to 3 minutes on 2 AVX2 cores (Zen 3), evaluation included.
"""
import json
import tempfile
import time
from pathlib import Path

from bench.footage import natural_shots
from bench.quality import run_main, task_arguments
from cli.train_flags import default_flags
from datasets.build import build_dataset, derived_sources
from experiments.stats import mean_std, welch_t_test
from metrics import shown_in
from utils.device import machine_summary
from utils.size import Size

POOL = default_flags()["pool"]  # the bench trains with train's default -pool
HARD, BLENDED = f"compare: pool {POOL}, hard", f"compare: pool {POOL}, blended"  # the compare rows' labels
FLICKER_TARGET, SEAM_TARGET = 1.10, 1.05  # as steady as the target within 10%; window switches within 5% of the rest
COLUMNS = [(name, m.short, max(6, len(m.short) + 1) + m.digits - 2, m.digits) for name, m in shown_in("tables")]  # from the registry


def evaluated(work, name, *flags):
    return json.loads(run_main("evaluate", "--checkpoint", work / "checkpoints" / name, "--json", "--metrics", "jod", *flags,
                               cwd=work).stdout)["scores"]


def compared(work, name, video, *flags):
    out = work / f"{name}_{len(list(work.glob('*_compare*.mp4')))}_compare.mp4"
    run_main("compare", "--checkpoint", work / "checkpoints" / name, "--video", video, "-o", out, "--weights", "trained", "--metrics",
             "jod", *flags, cwd=work)
    return json.loads(out.with_suffix(".json").read_text())["scores"]


def measure(task, shots, size, work, args, seed):
    """[(row label, scores)] for one task and seed, and the seconds its trainings took."""
    data = work / "data" / task.replace(":", "")
    if not data.exists():
        build_dataset(data, derived_sources(shots[:-1], task), size, val_fraction=0.25, overwrite=True, quiet=True, flow=True)
    name = f"{task.replace(':', '')}_seed{seed}"
    common = ["--data", data, "--max-steps", args.steps, "--epochs", 10 ** 6, "--sample-every", 10 ** 6, "--seed", seed]
    started = time.perf_counter()
    run_main("train", *common, "--ema", args.ema, "--name", name, cwd=work)
    for weight in args.temporal:
        run_main("train", *common, "--temporal", weight, "--name", f"{name}_temporal{weight:g}", cwd=work)
    seconds = time.perf_counter() - started
    rows = [("defaults", evaluated(work, name, "--weights", "trained")), (f"--ema {args.ema:g}", evaluated(work, name))]
    rows += [(f"--temporal {weight:g}", evaluated(work, f"{name}_temporal{weight:g}")) for weight in args.temporal]
    rows += [(HARD, compared(work, name, shots[-1], "--no-blend"))] if args.hard else []
    rows += [(BLENDED, compared(work, name, shots[-1]))]
    rows += [(f"compare: window {window}", compared(work, name, shots[-1], "--window", window)) for window in args.windows]
    return rows, seconds


def summarised(runs):
    """{label: {metric: [value per seed]}} from the rows of each seed's run."""
    found = {}
    for rows in runs:
        for label, scores in rows:
            for key, value in scores.items():
                if value is not None:
                    found.setdefault(label, {}).setdefault(key, []).append(value)
    return found


def against_defaults(values, label, key):
    """Welch's p of this row's `key` against the defaults' (or their compare row's), '-' with one seed."""
    base = HARD if label.startswith("compare") else "defaults"
    mine, theirs = values[label].get(key, []), values.get(base, {}).get(key, [])
    if label == base or len(mine) < 2 or len(theirs) < 2:
        return "-"
    return f"{welch_t_test(mine, theirs)[2]:.2f}"


def table(results):
    """One line per task and way: each metric's mean (± its standard deviation over seeds, with
    more than one), and Welch's p for PSNR and the flicker ratio against the defaults."""
    lines = [f"{'task':<13}{'way':<26}" + "".join(f"{label:>{width + 7}}" for _, label, width, _ in COLUMNS)
             + f"{'identity PSNR':>15}{'p PSNR':>8}{'p flicker':>10}"]
    for task, runs, _ in results:
        values = summarised(runs)
        for label in values:
            cells = "".join(spread(values[label].get(key), width, digits) for key, _, width, digits in COLUMNS)
            lines.append(f"{task:<13}{label:<26}{cells}{spread(values[label].get('psnr_identity'), 8, 2)}"
                         f"{against_defaults(values, label, 'psnr'):>8}{against_defaults(values, label, 'flicker'):>10}")
    return "\n".join(lines)


def verdicts(results):
    """Whether each task meets the targets, from the table's own numbers: the defaults' flicker
    ratio at most FLICKER_TARGET, and compare's (blended, its default) seam ratio at most SEAM_TARGET."""
    values = {task: summarised(runs) for task, runs, _ in results}
    lines = []
    for key, label, target in (("flicker", "defaults", FLICKER_TARGET), ("seam", BLENDED, SEAM_TARGET)):
        found = {task: mean_std(values[task][label][key])[0] for task in values}
        missed = [f"{task} {value:.2f}" for task, value in found.items() if value > target]
        lines.append(f"{key} ratio of {label} <= {target:.2f}: met on {len(found) - len(missed)} of {len(found)} tasks"
                     + (f"; missed on {', '.join(missed)}" if missed else ""))
    return "\n".join(lines)


def report(runs):
    """The header lines, table and verdicts of one or more runs ({"machine", "setting", "tasks"}, as --json saves them)."""
    results = [(entry["task"], entry["runs"], entry["train_seconds"]) for run in runs for entry in run["tasks"]]
    header = [line for run in runs for line in (run["machine"], run["setting"])]
    return "\n".join([*dict.fromkeys(header), table(results), verdicts(results)])


def spread(values, width, digits):
    if not values:
        return f"{'-':>{width + 7}}"
    mean, std = mean_std(values)
    return f"{mean:>{width}.{digits}f}" + (f" ±{std:<5.{digits}f}" if len(values) > 1 else " " * 7)


def main():
    parser = task_arguments(__doc__)
    parser.set_defaults(size=32, steps=100)  # 14 trainings for the seven tasks: at 48x48 and 150 steps they take 4 times as long
    parser.add_argument("--temporal", default="0", help="--temporal weights to measure beside the default's, comma-separated")
    parser.add_argument("--ema", type=float, default=0.99, help="the --ema decay to measure")
    parser.add_argument("--windows", default="", help="longer compare windows to measure, comma-separated (e.g. 18)")
    parser.add_argument("--hard", action="store_true", help="also compare with hard window switches, as before blending")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per way (0, 1, ...): with 2 or more, mean ± deviation and Welch's p")
    parser.add_argument("--json", help="also write the run to this file (as it goes: a long run leaves what it has measured)")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="measure nothing: print the table of these saved runs together")
    args = parser.parse_args()
    if args.table:
        print(report([json.loads(Path(path).read_text()) for path in args.table]))
        return
    args.windows = [int(w) for w in args.windows.split(",") if w]
    args.temporal = [float(w) for w in args.temporal.split(",") if w]
    started = time.perf_counter()
    saved = {"machine": machine_summary(), "tasks": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = Size(args.size, args.size)
        shots = natural_shots(work / "footage", frames=48, size=size)
        for task in args.tasks.split(","):
            measured = [measure(task, shots, size, work, args, seed) for seed in range(args.seeds)]
            saved["tasks"].append({"task": task, "runs": [rows for rows, _ in measured], "train_seconds": sum(s for _, s in measured)})
            saved["setting"] = (f"5 shots of 48 frames at {args.size}x{args.size} (the last quarter of each held out) to train on, "
                                f"a sixth to compare on; {args.steps} steps, seeds 0 to {args.seeds - 1}; "
                                f"{time.perf_counter() - started:.0f} s for {len(saved['tasks'])} task(s)")
            if args.json:
                Path(args.json).write_text(json.dumps(saved, indent=2))
    print(report([saved]))


if __name__ == "__main__":
    main()
