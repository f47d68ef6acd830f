"""Train a grid of experiments: the train flags with comma-separated values, times --seeds seeds.

    python main.py sweep -net unet,resnet --gan-loss dcgan,none --l1 100 --max-steps 2000 --seeds 3 --data data/NAME
Each point is an ordinary experiment in --checkpoints, named after its flags and seed. Started
again, a sweep skips finished points and resumes an interrupted one. `runs` compares them.

With --search N, each -net value gets a hyperparameter search of its own instead of a grid: N
trials of Optuna over the [space] table of --config, the same --max-steps each, pruned when
clearly behind; --finals K then trains each structure's best configuration with K more seeds.

    python main.py sweep --config examples/search.toml -net unet,examples/factorised.py:Factorised --data data/NAME --max-steps 300 --search 12 --finals 3
"""
import argparse
import itertools
import json
import sys
from pathlib import Path

from cli.argtypes import name_list, non_negative_int, positive_int, resource_list, switch
from cli.train_flags import TRAIN_FLAGS, add_train_flags
from utils.errors import UsageError

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


class SpaceTable(dict):
    """A search space as typed, with the file it came from (`source`: --config's file, or "--space")."""

    source = "--space"


def search_space(text):
    """--space: a JSON table (what --config turns its [space] table into, noting its file)."""
    from cli.config_file import FROM_FILE

    try:
        table = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a JSON table: {text[:60]!r}") from None
    if not isinstance(table, dict):
        raise argparse.ArgumentTypeError("expected a table of flags")
    space = SpaceTable(table)
    if FROM_FILE in space:
        space.source = space.pop(FROM_FILE)
    return space


search_space.takes_table = True  # --config writes its [space] table here whole


def objective_list(text):
    from metrics import validated_metrics

    names = name_list(validated_metrics())(text)
    if len(names) > 2:
        raise argparse.ArgumentTypeError("one objective, or two for a Pareto front")
    return names


def add_arguments(parser):
    own = parser.add_argument_group("sweep")
    own.add_argument("--seeds", type=positive_int, default=1, help="seeds per point (0, 1, ...), for mean, deviation and significance")
    own.add_argument("--jobs", type=positive_int, default=1,
                     help="points trained at once (each gets an equal share of the CPU threads, and a GPU of its own while there are enough)")
    own.add_argument("--checkpoints", default="checkpoints", help="folder for the experiment folders")
    own.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each, start nothing")
    own.add_argument("--config", metavar="FILE", help="the grid from a TOML file: flag names as keys, a list of values "
                                                      "for each swept one; flags typed on the command line override it (default: none)")
    search = parser.add_argument_group("a search per structure (instead of a grid)")
    search.add_argument("--search", type=positive_int, metavar="N",
                        help="trials of a hyperparameter search for each -net value, over the [space] of --config, each "
                             "trained for --max-steps (needed); the other flags take one value each (default: no search, a grid)")
    search.add_argument("--space", type=search_space, metavar="JSON",
                        help="the search space, usually --config's [space] table: {flag: {low, high, log}} for a range, "
                             "{flag: [choices]} for choices, net_args = {NAME: ...} for a plug-in's arguments (default: none)")
    search.add_argument("--objective", type=objective_list, default=["psnr"], metavar="METRIC[,METRIC]",
                        help="the validation score each trial is judged by, in the direction it is better; two give a "
                             "Pareto front per structure (and no pruning) (default: psnr)")
    from experiments.search import DEFAULT_PRUNER, PRUNERS, SAMPLERS

    search.add_argument("--sampler", choices=list(SAMPLERS), default="tpe",
                        help="Optuna's sampler: " + "; ".join(f"{name}: {s.summary}" for name, s in SAMPLERS.items()))
    search.add_argument("--prune", choices=list(PRUNERS), default=DEFAULT_PRUNER,
                        help="stop trials clearly behind at a validation: " + "; ".join(f"{name}: {p.summary}" for name, p in PRUNERS.items()))
    search.add_argument("--finals", type=non_negative_int, default=0, metavar="K",
                        help="after the search, train each structure's best configuration again with K seeds (1..K), for "
                             "`runs` to compare the structures' seed groups with Welch's test")
    search.add_argument("--search-seed", type=non_negative_int, default=0, help="the sampler's seed")
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
    from experiments.sweep import Point, expand_grid, for_its_networks

    grid = {flag.dest: getattr(args, flag.dest) for flag in GRID_FLAGS if getattr(args, flag.dest) is not None}
    if args.search:
        return search(args, grid)
    for flag in GRID_FLAGS:
        if flag.takes_arguments and flag.dest in grid:  # {"width": "16,32"} -> [{"width": "16"}, {"width": "32"}]
            grid[flag.dest] = argument_sets(grid[flag.dest])
    flags = {flag.dest: flag for flag in TRAIN_FLAGS}
    points = list({point.name: point for point in (Point(for_its_networks(values), flags)
                                                   for values in expand_grid(grid, args.seeds))}.values())
    print(f"sweep: {len(points)} runs ({len(points) // args.seeds} points x {args.seeds} seeds) in {Path(args.checkpoints)}/")
    return train_points(args, points)


def train_points(args, points):
    """Train the sweep's `points` (here, or on Dask with --dask) as far as each is not done yet: the
    finished are skipped, the interrupted resumed. The exit code: 1 when any did not finish."""
    from cli.train_flags import default_flags
    from experiments.page import refresh_comparison_page
    from experiments.sweep import point_plan, run_points

    root = Path(args.checkpoints)
    plans = {point.name: point_plan(root / point.name) for point in points}
    if args.dask:  # each worker sees for itself whether to resume; a point running for a dead driver is waited for
        jobs = [(point.name, point.train_argv(root.resolve())) for point in points if plans[point.name] != "done"]
    else:
        jobs = [(point.name, point.train_argv(root, resume=plans[point.name] == "resume"))
                for point in points if plans[point.name] in ("new", "resume")]
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
        codes = run_points(jobs, repo / "main.py", root, args.jobs, on_done, gpus_to_share(args, "points"))
    refresh_comparison_page(root, defaults)
    failed = sorted(name for name, code in codes.items() if code != 0)
    if failed:
        print(f"sweep: {len(failed)} run(s) did not finish: {', '.join(failed)}; start the sweep again to resume them")
        return 1
    print(f"sweep: all {len(points)} runs finished; compare them with `python main.py runs --checkpoints {root}`")
    return 0


def gpus_to_share(args, what):
    """The GPUs this machine's runs are handed one each (points of a grid, or a search's trials), with
    a warning when --jobs runs at a time must share them; none when --device is cpu."""
    from utils.errors import warn
    from utils.gpus import visible_gpus

    gpus = visible_gpus() if args.device != ["cpu"] else []  # --device is a grid flag: a list of values, or None
    if 0 < len(gpus) < args.jobs:
        warn("--jobs", f"{args.jobs} {what} at a time share {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: each is slower, and "
                       f"what autotune measures there is measured beside the others (fix --amp and --memory-format to avoid it)")
    return gpus


def search(args, grid):
    """sweep --search: a study per -net value, then the finals."""
    from experiments.search import LocalTrials, Search, parse_space, run_search

    flags = {flag.dest: flag for flag in TRAIN_FLAGS}
    if args.space is None:
        raise UsageError("argument --search: needs a search space, the [space] table of --config (see examples/search.toml)")
    space = parse_space(args.space, flags, args.space.source)
    structures = grid.pop("network", None) or ["unet"]
    if "max_steps" not in grid or len(grid["max_steps"]) != 1:
        raise UsageError("argument --search: needs one --max-steps, the budget every trial gets")
    many = [dest for dest, values in grid.items() if isinstance(values, list) and len(values) != 1]
    if many:
        raise UsageError(f"argument --{many[0].replace('_', '-')}: a search varies the [space]; give one value here")
    fixed = {dest: values[0] if isinstance(values, list) else values for dest, values in grid.items()}
    for dest in space:
        if "." not in dest:  # the space decides these; a network's arguments from the space join those given as flags
            fixed.pop(dest, None)
    max_steps = fixed.pop("max_steps")
    settings = Search(space, args.search, max_steps, tuple(args.objective), args.sampler, args.prune, args.search_seed, fixed)
    root = Path(args.checkpoints)
    repo = Path(__file__).resolve().parent.parent
    print(f"search: {args.search} trials of {max_steps} steps for each of {', '.join(structures)}, judged by "
          f"{' and '.join(args.objective)}, in {root}/search/", flush=True)
    if args.dry_run:
        return 0
    if args.dask:
        from experiments.cluster import DaskTrials

        runner = DaskTrials(repo, root.resolve(), args.dask, workers=args.jobs, runs_per_worker=args.runs_per_worker,
                            resources=args.resources)
    else:
        runner = LocalTrials(repo / "main.py", root, args.jobs, gpus_to_share(args, "trials"))
    try:
        summary = run_search(settings, structures, root.resolve() if args.dask else root, flags, runner, args.jobs)
    finally:
        if hasattr(runner, "close"):
            runner.close()
    print_search(summary)
    unfinished = [(structure, entry) for structure, entry in summary["structures"].items() if "best" not in entry]
    for structure, entry in unfinished:
        reasons = [row["reason"] for row in entry["rows"] if row.get("reason")]
        print(f"error: {structure}: no trial finished, so the search cannot say what it does at its best"
              + (f"; the first failure: {reasons[0]}" if reasons else ""), file=sys.stderr)
    if unfinished:
        return 1
    if args.finals:
        return finals(args, summary, settings, flags)
    from cli.train_flags import default_flags
    from experiments.page import refresh_comparison_page

    refresh_comparison_page(root, default_flags())
    return 0


def print_search(summary):
    for structure, entry in summary["structures"].items():
        statuses = [row["status"] for row in entry["rows"]]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("complete", "pruned", "fail") if statuses.count(s))
        best = entry.get("best")
        saved = entry["saved_steps"] / entry["budget_steps"] if entry["budget_steps"] else 0
        print(f"search: {structure}: {counts}; pruning saved {entry['saved_steps']} of {entry['budget_steps']} trial-steps "
              f"({saved:.0%})" + (f"; best {best['value']:.4g} (trial {best['number']}: "
                                   f"{', '.join(f'{k} {v:g}' if isinstance(v, float) else f'{k} {v}' for k, v in best['params'].items())})"
                                   if best else "; no trial finished"))


def finals(args, summary, settings, flags):
    """Each structure's best configuration trained again with seeds 1..K (seed 0 was its trial's)."""
    from experiments.search import point_values, slug
    from experiments.sweep import Point

    points = []
    for structure, entry in summary["structures"].items():
        if "best" not in entry:
            continue
        values = {**settings.fixed, "network": structure, **point_values(entry["best"]["params"]), "max_steps": settings.max_steps}
        prefix = f"{slug(Path(str(settings.fixed.get('data', 'data'))).name)}_final_{slug(Path(structure).stem if '/' in structure else structure)}"
        points += [Point({**values, "seed": seed}, flags, name=f"{prefix}_seed{seed}") for seed in range(1, args.finals + 1)]
    print(f"search: finals, {len(points)} runs ({args.finals} seeds of each structure's best); compare them with "
          f"`python main.py runs --checkpoints {args.checkpoints} --select '*_final_*'`", flush=True)
    return train_points(args, points)
