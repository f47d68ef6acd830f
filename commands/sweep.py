"""Train a grid of experiments: the train flags with comma-separated values, times --seeds seeds.

    python main.py sweep -net unet,resnet --gan-loss dcgan,none --l1 100 --max-steps 2000 --seeds 3 --data data/NAME
Each point is an ordinary experiment in --checkpoints, named after its flags and seed. Started
again, a sweep skips finished points and resumes an interrupted one. `runs` compares them.
"""
import argparse
import itertools
from pathlib import Path

from cli.argtypes import positive_int, resource_list, switch
from cli.train_flags import TRAIN_FLAGS, add_train_flags

HELP = "train a grid of experiments over flag values and seeds"
GRID_FLAGS = tuple(flag for flag in TRAIN_FLAGS if not flag.per_run)


def grid_options(flag):
    """add_argument options of a train flag made to take a comma-separated list of values (a list);
    a switch takes on,off."""
    options = dict(flag.options)
    if flag.takes_arguments:  # NAME=V1,V2: each NAME is swept over its values
        return {**options, "default": None, "help": options["help"] + "; NAME=V1,V2 sweeps its values (default: none)"}
    default = options.get("default")
    swept = "comma-separated values are swept" + ("" if "default:" in options["help"] else
                                                   f" (default: train's, {('on' if default else 'off') if flag.is_switch else default})")
    if flag.is_switch:
        options.pop("action")
        options.update(nargs="?", const="on", metavar="on,off")
        base = switch
    else:
        base = options.pop("type", str)
    choices = options.pop("choices", None)

    def values(text):
        parsed = [base(part.strip()) for part in str(text).split(",")]
        for value in parsed if choices else []:
            if value not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(choices)})")
        return parsed

    values.__name__ = getattr(base, "__name__", "value")
    options.update(type=values, default=None, help=f"{options['help']}; {swept}")
    return options


def argument_sets(swept):
    """Every combination of the values of each NAME=V1,V2 argument, as {NAME: value} dicts."""
    names = list(swept)
    return [dict(zip(names, values)) for values in itertools.product(*(swept[name].split(",") for name in names))]


def for_its_networks(values):
    """A point's values without --net-arg (--disc-arg) where its network is a built-in, which takes
    flags instead: sweeping a plug-in's arguments beside a built-in trains the built-in once."""
    from networks import discriminator_spec, generator_spec

    for dest, network, spec_of in (("net_args", "network", generator_spec), ("disc_args", "disc", discriminator_spec)):
        if dest in values and spec_of(values.get(network, "unet" if network == "network" else "patch")).builtin:
            values = {key: value for key, value in values.items() if key != dest}
    return values


def add_arguments(parser):
    own = parser.add_argument_group("sweep")
    own.add_argument("--seeds", type=positive_int, default=1, help="seeds per point (0, 1, ...), for mean, deviation and significance")
    own.add_argument("--jobs", type=positive_int, default=1,
                     help="points trained at once (each gets an equal share of the CPU threads, and a GPU of its own while there are enough)")
    own.add_argument("--checkpoints", default="checkpoints", help="folder for the experiment folders")
    own.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each, start nothing")
    own.add_argument("--config", metavar="FILE", help="the grid from a TOML file: flag names as keys, a list of values "
                                                      "for each swept one; flags typed on the command line override it (default: none)")
    cluster = parser.add_argument_group("on a Dask cluster")
    cluster.add_argument("--dask", metavar="ADDRESS",
                         help="run the points on the Dask scheduler at ADDRESS (tcp://HOST:8786), or 'local' for worker "
                              "processes on this machine (--jobs of them); --checkpoints must be shared by all workers "
                              "(default: no Dask; --jobs points at once here)")
    cluster.add_argument("--runs-per-worker", type=positive_int, default=1,
                         help="points a local worker runs at once (on your own workers: dask worker --nthreads)")
    cluster.add_argument("--resources", type=resource_list, default=None, metavar="NAME=N,...",
                         help="worker resources each point takes, e.g. GPU=1 (start workers with --resources GPU=1 each) (default: none)")
    add_train_flags(parser, options_of=grid_options, flags=GRID_FLAGS)


def main(args):
    from cli.train_flags import default_flags
    from experiments.page import refresh_comparison_page
    from experiments.sweep import Point, expand_grid, point_plan, run_points
    from utils.errors import warn
    from utils.gpus import visible_gpus

    grid = {flag.dest: getattr(args, flag.dest) for flag in GRID_FLAGS if getattr(args, flag.dest) is not None}
    for flag in GRID_FLAGS:
        if flag.takes_arguments and flag.dest in grid:  # {"width": "16,32"} -> [{"width": "16"}, {"width": "32"}]
            grid[flag.dest] = argument_sets(grid[flag.dest])
    flags = {flag.dest: flag for flag in TRAIN_FLAGS}
    root = Path(args.checkpoints)
    points = list({point.name: point for point in (Point(for_its_networks(values), flags)
                                                   for values in expand_grid(grid, args.seeds))}.values())
    plans = {point.name: point_plan(root / point.name) for point in points}
    if args.dask:  # each worker sees for itself whether to resume; a point running for a dead driver is waited for
        jobs = [(point.name, point.train_argv(root.resolve())) for point in points if plans[point.name] != "done"]
    else:
        jobs = [(point.name, point.train_argv(root, resume=plans[point.name] == "resume"))
                for point in points if plans[point.name] in ("new", "resume")]
    print(f"sweep: {len(points)} runs ({len(points) // args.seeds} points x {args.seeds} seeds) in {root}/")
    for name, plan in plans.items():
        print(f"  {plan:<8} {name}")
    if args.dry_run:
        for _, argv in jobs:
            print("python main.py train " + " ".join(argv))
        return 0
    defaults = default_flags()
    finished = {"count": len(points) - len(jobs)}

    def on_done(name, code):
        finished["count"] += 1
        print(f"sweep: {name} {'finished' if code == 0 else f'stopped with exit code {code}'} ({finished['count']}/{len(points)})", flush=True)
        refresh_comparison_page(root, defaults)

    repo = Path(__file__).resolve().parent.parent
    if args.dask:
        from experiments.cluster import run_points_on_dask

        codes = run_points_on_dask(jobs, repo, root.resolve(), args.dask, on_done, workers=args.jobs,
                                   runs_per_worker=args.runs_per_worker, resources=args.resources)
    else:
        gpus = visible_gpus() if args.device != ["cpu"] else []  # --device is a grid flag: a list of values, or None
        if 0 < len(gpus) < args.jobs:
            warn("--jobs", f"{args.jobs} points at a time share {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: each is slower, and "
                           f"what autotune measures there is measured beside the others (fix --amp and --memory-format to avoid it)")
        codes = run_points(jobs, repo / "main.py", root, args.jobs, on_done, gpus)
    failed = sorted(name for name, code in codes.items() if code != 0)
    if failed:
        print(f"sweep: {len(failed)} run(s) did not finish: {', '.join(failed)}; start the sweep again to resume them")
        return 1
    print(f"sweep: all {len(points)} runs finished; compare them with `python main.py runs --checkpoints {root}`")
    return 0
