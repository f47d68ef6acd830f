"""Structures compared each at its best, on a task whose answer the guide knows: the example plug-in
(examples/factorised.py) against the U-Net on the guide's footage (blur -> sharp, five shots of
scikit-image's photographs), every number from this one run:

- each structure at the train defaults (seed 0);
- a grid of the same budget (the space's learning rates times L1 weights, as many points as trials);
- the search (`sweep --search`, TPE, median pruning) and the same search without pruning: the best
  score each found, and the trial-steps that pruning saved;
- the finals: each structure's best configuration from the pruned search with more seeds, and
  Welch's t-test between the structures' seed groups.

    python -m bench.search --work /tmp/bench_search                            # 48x32, 100 steps, 6 trials, 2 finals
    python -m bench.search --size 64x48 --steps 300 --trials 12 --finals 3     # the guide's scale (hours on 2 cores)
"""
import argparse
import json
from pathlib import Path

from bench import REPO, run_main
from bench.footage import natural_shots
from cli.argtypes import frame_size
from datasets.build import build_dataset, derived_sources
from experiments.stats import mean_std, welch_t_test
from utils.device import machine_summary

PHOTOS = ("astronaut", "chelsea", "rocket", "cat", "immunohistochemistry")  # the guide's shots
STRUCTURES = ("unet", f"{REPO / 'examples' / 'factorised.py'}:Factorised")  # the plug-in by its path: any working folder
LRS, L1S = (3e-4, 1e-3, 3e-3), (30.0, 100.0)  # the grid: inside the space of examples/search.toml
SPACE = REPO / "examples" / "search.toml"



def last_psnr(folder):
    records = [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines() if '"val/psnr"' in line]
    return records[-1]["val/psnr"]


def runs_of(root):
    return {run["name"]: run for run in json.loads(run_main("runs", "--checkpoints", root, "--json", cwd=root.parent).stdout)["runs"]}


def search(work, name, data, args, *extra):
    root = work / name
    run_main("sweep", "--config", SPACE, "-net", ",".join(STRUCTURES), "--data", data, "--max-steps", args.steps, "--search",
             args.trials, "--jobs", args.jobs, "--checkpoints", root, *extra, cwd=work)
    return json.loads((root / "search" / "summary.json").read_text())["structures"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vgan_bench_search"))
    parser.add_argument("--size", type=frame_size, default=frame_size("48x32"), help="frames: sides the U-Net takes (multiples of 16)")
    parser.add_argument("--frames", type=int, default=96, help="frames per shot (the last tenth held out)")
    parser.add_argument("--steps", type=int, default=100, help="steps per trial and per run")
    parser.add_argument("--trials", type=int, default=6, help="trials per structure (and points of the grid)")
    parser.add_argument("--finals", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data" / "footage_blur"
    if not data.exists():
        shots = natural_shots(work / "videos", frames=args.frames, size=args.size, photos=PHOTOS)
        build_dataset(data, derived_sources(shots, "blur"), args.size, quiet=True)
    budget = ["--max-steps", args.steps, "--data", data, "--jobs", args.jobs]

    defaults = work / "defaults"
    run_main("sweep", "-net", ",".join(STRUCTURES), *budget, "--checkpoints", defaults, cwd=work)
    grid = work / "grid"
    points = [(lr, l1) for lr in LRS for l1 in L1S][:args.trials]
    for lr, l1 in points:
        run_main("sweep", "-net", ",".join(STRUCTURES), *budget, "-lr", lr, "--l1", l1, "--checkpoints", grid, cwd=work)
    pruned = search(work, "search", data, args)
    unpruned = search(work, "search_unpruned", data, args, "--prune", "none")
    search(work, "search", data, args, "--finals", args.finals)  # the pruned search is done: only its finals train

    at_defaults, in_grid, finals = runs_of(defaults), runs_of(grid), runs_of(work / "search")
    print(f"{machine_summary()}; {args.size.width}x{args.size.height} frames, {args.steps} steps per run, {args.trials} trials "
          f"per structure, finals of {args.finals} seeds; held-out PSNR (dB), last validation")
    print(f"{'structure':<36}{'defaults':>9}{'grid best':>10}{'search':>8}{'unpruned':>10}{'steps used':>12}"
          f"{'unpruned':>10}{'saved':>7}   finals (mean ± std)")
    groups = {}
    for structure in STRUCTURES:
        stem = Path(structure).stem if "/" in structure else structure
        default = next(r["psnr"] for r in at_defaults.values() if r["network"] == structure)
        grid_best = max(r["psnr"] for r in in_grid.values() if r["network"] == structure and r["psnr"] is not None)
        a, b = pruned[structure], unpruned[structure]
        used_a, used_b = (sum(row["steps"] for row in e["rows"]) for e in (a, b))
        scores = [r["psnr"] for name, r in finals.items() if f"_final_{stem}_seed" in name]
        groups[structure] = scores
        m, s = mean_std(scores) if scores else (float("nan"), 0.0)
        print(f"{structure:<36}{default:>9.2f}{grid_best:>10.2f}{a['best']['value']:>8.2f}{b['best']['value']:>10.2f}"
              f"{used_a:>12}{used_b:>10}{1 - used_a / used_b:>7.0%}   {m:.2f} ± {s:.2f} (n={len(scores)})")
        print(f"{'':<36}best of the search: {json.dumps(a['best']['params'])}; unpruned: {json.dumps(b['best']['params'])}")
    first, second = (groups[s] for s in STRUCTURES)
    if len(first) >= 2 and len(second) >= 2:
        t, dof, p = welch_t_test(first, second)
        print(f"finals: Welch's t = {t:.2f}, p = {p:.3g} ({'a difference' if p < 0.05 else 'no significant difference'} at p < 0.05)")


if __name__ == "__main__":
    main()
