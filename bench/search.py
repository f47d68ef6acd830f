"""What pruning saves and what it loses, on tasks whose answers the guide knows (blur -> sharp, and
gray -> colour, on five shots of scikit-image's photographs), for the U-Net and the example
plug-in (examples/factorised.py), at each budget asked, every number from this one run:

- the search without pruning (`sweep --search N --prune none`): every trial's validation curve,
  the best it found, and the finals of its best configuration (more seeds: their deviation is the
  yardstick of "as good");
- the search with the default pruner, run for real: the trial-steps it saved and the best it found;
- every candidate pruner replayed on the unpruned trials' curves, in many orders of the trials
  (Optuna's own pruners, told the same values at the same steps): the trial-steps each would save,
  and how often the best it would keep is within one finals deviation of the unpruned best.

    python -m bench.search --quick                                   # 15 minutes or less on 2 cores
    python -m bench.search --steps 100,300 --trials 8 --finals 3     # the docs' table (hours on 2 cores)
"""
import argparse
import dataclasses
import datetime
import hashlib
import json
import random
import subprocess
from pathlib import Path

from bench import REPO, run_main
from bench.footage import natural_shots
from cli.argtypes import frame_size
from datasets.build import build_dataset, derived_sources
from experiments.search import DEFAULT_PRUNER, PRUNERS
from experiments.stats import mean_std
from runfolder.metrics import metric_lines, validation_records
from utils.device import machine_summary

PHOTOS = ("astronaut", "chelsea", "rocket", "cat", "immunohistochemistry")  # the guide's shots
STRUCTURES = ("unet", f"{REPO / 'examples' / 'factorised.py'}:Factorised")  # the plug-in by its path: any working folder
SPACE = REPO / "examples" / "search.toml"
TASKS = {"blur": "blur", "colour": "gray"}  # the task's name -> build-dataset's --pair
ORDERS = 50  # orders of the trials each candidate is replayed in
# The pruners tried (name -> Strategy): the registry's, and variants of them.
def variant(name, options=(), per_budget=()):
    return dataclasses.replace(PRUNERS[name], options=options, per_budget=per_budget)


CANDIDATES = {
    "median, 1 startup trial, no warm-up (the default before)": variant("median", (("n_startup_trials", 1),)),
    "median, 2 startup trials, warm-up 1/4": variant("median", (("n_startup_trials", 2),), (("n_warmup_steps", 0.25),)),
    f"median, 2 startup trials, warm-up 1/2{' (the default)' if DEFAULT_PRUNER == 'median' else ''}": PRUNERS["median"],
    "halving, first rung 1/10, rate 3": variant("halving", (("reduction_factor", 3),), (("min_resource", 0.1),)),
    "halving, first rung 1/4, rate 2": variant("halving", (("reduction_factor", 2),), (("min_resource", 0.25),)),
    "halving, first rung 1/4, rate 2, judged from the second": variant("halving", (("reduction_factor", 2), ("min_early_stopping_rate", 1)),
                                                                      (("min_resource", 0.25),)),
    "hyperband, first rung 1/10, rate 3": variant("hyperband", (("reduction_factor", 3),), (("min_resource", 0.1), ("max_resource", 1.0))),
}


@dataclasses.dataclass(frozen=True)
class Budget:
    max_steps: int
    seed: int = 0


def search(work, root, data, args, steps, *extra):
    run_main("sweep", "--config", SPACE, "-net", args.structures, "--data", data, "--max-steps", steps, "--search",
             args.trials, "--jobs", args.jobs, "--checkpoints", root, *extra, cwd=work)
    return json.loads((root / "search" / "summary.json").read_text())["structures"]


def curves(root, entry):
    """[[(step, PSNR)], ...] of a search's trials, in the order they were started."""
    rows = sorted(entry["rows"], key=lambda row: row["number"])
    return [[(r["step"], r["val/psnr"]) for r in validation_records(metric_lines(root / row["run"])) if "val/psnr" in r]
            for row in rows if row["run"]]


def replay(strategy, trial_curves, max_steps, order):
    """(trial-steps used, the best final PSNR among the trials it lets finish) of `strategy` told
    the curves in `order`, as the search tells Optuna (a trial at its last step is never pruned)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A fixed study name: Hyperband puts each trial in a bracket by a hash of the name and the trial's number.
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=strategy.build(Budget(max_steps)),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    used, best = 0, float("-inf")
    for index in order:
        trial, stopped = study.ask(), None
        for step, value in trial_curves[index]:
            trial.report(value, step)
            if step < max_steps and trial.should_prune():
                stopped = step
                break
        if stopped is None:
            study.tell(trial, trial_curves[index][-1][1])
            used, best = used + max_steps, max(best, trial_curves[index][-1][1])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            used += stopped
    return used, best


def replay_table(trial_curves, max_steps, deviation):
    """{candidate: (share of the trial-steps saved, share of orders whose best is within one finals deviation)}."""
    finished = [c for c in trial_curves if c and c[-1][0] >= max_steps]
    unpruned_best = max(c[-1][1] for c in finished)
    orders = [random.Random(seed).sample(range(len(finished)), len(finished)) for seed in range(ORDERS)]
    table = {}
    for name, strategy in CANDIDATES.items():
        results = [replay(strategy, finished, max_steps, order) for order in orders]
        saved = 1 - sum(used for used, _ in results) / (len(results) * max_steps * len(finished))
        kept = sum(unpruned_best - best <= deviation for _, best in results) / len(results)
        table[name] = (saved, kept)
    return table


def task_data(work, task, args):
    data = work / "data" / f"footage_{task}"
    if not data.exists():
        shots = natural_shots(work / "videos", frames=args.frames, size=args.size, photos=PHOTOS)
        build_dataset(data, derived_sources(shots, TASKS[task]), args.size, quiet=True)
    return data


def measure(work, task, steps, args):
    """The rows of one task and budget, per structure."""
    data = task_data(work, task, args)
    default = PRUNERS[DEFAULT_PRUNER]  # the pruned search's folder is named by the default's settings: a new default, a new search
    unpruned_root = work / f"{task}_{steps}_unpruned"
    pruned_root = work / f"{task}_{steps}_pruned_{hashlib.sha256(repr(default).encode()).hexdigest()[:8]}"
    unpruned = search(work, unpruned_root, data, args, steps, "--prune", "none")
    search(work, unpruned_root, data, args, steps, "--prune", "none", "--finals", args.finals)  # only the finals train
    pruned = search(work, pruned_root, data, args, steps)
    finals = {run["name"]: run for run in json.loads(run_main("runs", "--checkpoints", unpruned_root, "--json",
                                                               cwd=work).stdout)["runs"]}
    rows = []
    for structure in args.structures.split(","):
        stem = Path(structure).stem if "/" in structure else structure
        scores = [r["psnr"] for name, r in finals.items() if f"_final_{stem}_seed" in name and r["psnr"] is not None]
        deviation = mean_std(scores)[1] if len(scores) >= 2 else float("nan")
        a, b = pruned[structure], unpruned[structure]
        rows.append({"structure": stem, "unpruned best": b["best"]["value"], "pruned best": a["best"]["value"],
                     "saved": a["saved_steps"] / a["budget_steps"], "deviation": deviation,
                     "replays": replay_table(curves(unpruned_root, b), steps, deviation)})
    return rows


def commit():
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "?"


def print_rows(task, steps, rows, args):
    print(f"\n{task}, {steps} steps, {args.trials} trials per structure, finals of {args.finals} seeds (PSNR, dB, last validation):")
    for row in rows:
        print(f"  {row['structure']}: unpruned best {row['unpruned best']:.2f}, finals deviation {row['deviation']:.2f}; "
              f"the default pruner, run: saved {row['saved']:.0%} of the trial-steps, best {row['pruned best']:.2f} "
              f"({row['pruned best'] - row['unpruned best']:+.2f})")
        print(f"    {'replayed on the unpruned curves, ' + str(ORDERS) + ' orders':<58}{'saved':>7}{'best kept':>11}")
        for name, (saved, kept) in row["replays"].items():
            print(f"    {name:<58}{saved:>7.0%}{kept:>11.0%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vgan_bench_search"))
    parser.add_argument("--size", type=frame_size, default=frame_size("48x32"), help="frames: sides the U-Net takes (multiples of 16)")
    parser.add_argument("--frames", type=int, default=96, help="frames per shot (the last tenth held out)")
    parser.add_argument("--steps", default="100,300", help="budgets: steps per trial, comma-separated")
    parser.add_argument("--tasks", default="blur,colour")
    parser.add_argument("--trials", type=int, default=8, help="trials per structure")
    parser.add_argument("--finals", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--structures", default=",".join(STRUCTURES), help="-net values, comma-separated")
    parser.add_argument("--quick", action="store_true", help="the U-Net alone, 100 steps, 6 trials, 2 finals, both tasks: "
                                                             "15 minutes or less on 2 cores")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.trials, args.finals, args.structures = "100", 6, 2, STRUCTURES[0]
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"{machine_summary()}; {datetime.date.today()}; commit {commit()}; {args.size.width}x{args.size.height} frames")
    for steps in map(int, args.steps.split(",")):
        for task in args.tasks.split(","):
            print_rows(task, steps, measure(work, task, steps, args), args)


if __name__ == "__main__":
    main()
