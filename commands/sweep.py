"""Train a grid of experiments: the train flags with comma-separated values, times --seeds seeds.

    python main.py sweep -net unet,resnet --gan-loss dcgan,none --l1 100 --max-steps 2000 --seeds 3 --data data/NAME
Each point is an ordinary experiment in --checkpoints, named after its flags and seed. Started
again, a sweep skips finished points and resumes an interrupted one. `runs` compares them.
"""
import argparse
from pathlib import Path

from commands import train
from utils.argtypes import positive_int

HELP = "train a grid of experiments over flag values and seeds"


def add_arguments(parser):
    own = parser.add_argument_group("sweep")
    own.add_argument("--seeds", type=positive_int, default=1, help="seeds per point (0, 1, ...), for mean, deviation and significance")
    own.add_argument("--jobs", type=positive_int, default=1, help="points trained at once (each gets an equal share of the CPU threads)")
    own.add_argument("--checkpoints", default="checkpoints", help="folder for the experiment folders")
    own.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each, start nothing")
    train.add_arguments(parser, grid=True)


def grid_flags():
    """[(dest, flag as typed, is a switch)] of the train flags a sweep takes."""
    registry = []
    train.add_arguments(argparse.ArgumentParser(add_help=False), grid=True, registry=registry)
    return registry


def run(args):
    from experiments.page import write_comparison_page
    from experiments.runs import experiment_folders, groups, summarize
    from experiments.sweep import expand_grid, point_name, point_state, run_points, train_argv

    registry = grid_flags()
    flags = {dest: flag for dest, flag, _ in registry}
    switches = {dest for dest, _, switch in registry if switch}
    grid = {dest: getattr(args, dest) for dest, _, _ in registry if getattr(args, dest) is not None}
    points = expand_grid(grid, args.seeds)
    flags["seed"] = "--seed"
    root = Path(args.checkpoints)
    jobs, states = [], {}
    for point in points:
        name = point_name(point, flags)
        states[name] = point_state(root / name)
        argv = train_argv(point, flags, switches) + ["--name", name, "--checkpoints", str(root)]
        if states[name] == "resume":
            argv.append("--resume")
        if states[name] in ("new", "resume"):
            jobs.append((name, argv))
    print(f"sweep: {len(points)} runs ({len(points) // args.seeds} points x {args.seeds} seeds) in {root}/")
    for name, state in states.items():
        print(f"  {state:<8} {name}")
    if args.dry_run:
        for name, argv in jobs:
            print("python main.py train " + " ".join(argv))
        return 0
    defaults = train.default_flags()
    finished = {"count": len(points) - len(jobs)}

    def on_done(name, code):
        finished["count"] += 1
        print(f"sweep: {name} {'finished' if code == 0 else f'stopped with exit code {code}'} ({finished['count']}/{len(points)})", flush=True)
        runs = [summarize(folder, defaults) for folder in experiment_folders(root)]
        write_comparison_page(root, runs, groups(runs))

    codes = run_points(jobs, Path(__file__).resolve().parent.parent / "main.py", root, args.jobs, on_done)
    failed = sorted(name for name, code in codes.items() if code != 0)
    if failed:
        print(f"sweep: {len(failed)} run(s) did not finish: {', '.join(failed)}; start the sweep again to resume them")
        return 1
    print(f"sweep: all {len(points)} runs finished; compare them with `python main.py runs --checkpoints {root}`")
    return 0
