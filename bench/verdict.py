"""The verdict's calibration: how often it calls a group worse when none is, and how often it finds a
difference that is there, from one run on a small task (blur -> sharp over scikit-image's
photographs, two shots held out as test footage):

- real A/A: many seeds of one configuration, split at random into 2 or more "structures" of 3 seeds,
  many times, each judged on the test clips; the share of splits in which any group is called worse,
  beside the range that share takes for a rule calibrated at exactly 5% (the same splits of as
  many seeds drawn from a normal distribution: a few seeds' splits are far from independent);
- synthetic A/A: groups of 3 seeds drawn from the seed deviation measured here, 2 to 6 groups, the
  verdict's rule beside the rule `runs` used before (every group against the best, Welch, p < 0.05);
- power: the same structure with a known handicap (a fifth of the steps), 3 seeds against 3 drawn
  from the A/A seeds, and the power the formula gives for the measured difference;
- how many seeds a difference needs, from the measured seed deviation.

    python -m bench.verdict --work /tmp/bench_verdict                      # 16 + 8 seeds, 150 and 30 steps, 32x32
    python -m bench.verdict --seeds 24 --handicapped 12 --steps 300        # tighter figures, about three times as long
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from bench import run_main
from bench.footage import natural_shots
from cli.argtypes import frame_size
from experiments.verdict import decide, minimum_detectable, power_of, seeds_needed
from utils.device import machine_summary

TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "immunohistochemistry")
TEST_PHOTOS = ("coffee", "hubble_deep_field")  # shots no run trains on
NETWORK = ["-net", "unet", "--channels", "8", "--depth", "2", "--perceptual-every", "0"]
SPLITS = 400  # random splits of the A/A seeds per number of groups
NORMAL_SAMPLES = 100  # normal samples of as many seeds, for the range a calibrated rule's split share takes
SYNTHETIC = 2000  # synthetic grids per number of groups
SEEDS_PER_GROUP = 3



def against_the_best(groups):
    """The rule `runs` used before: the best mean, each other group tested against it by Welch's test at 0.05."""
    means = {name: np.mean(np.mean(values, axis=-1) if np.ndim(values) > 1 else values) for name, values in groups.items()}
    best = max(means, key=means.get)
    per_seed = {name: np.mean(values, axis=-1) if np.ndim(values) > 1 else np.asarray(values) for name, values in groups.items()}
    return {name: "worse" if name != best and stats.ttest_ind(per_seed[name], per_seed[best], equal_var=False).pvalue < 0.05
            else "no difference" for name in groups}


def called_worse(rule, groups):
    return any(word.startswith("worse") for word in rule(groups).values())


def split_share(rule, seeds, groups, splits, rng):
    """The share of `splits` random splits of `seeds` ((seeds, clips) scores) into `groups` groups of
    SEEDS_PER_GROUP in which `rule` calls some group worse."""
    calls = 0
    for _ in range(splits):
        order = rng.permutation(len(seeds))
        calls += called_worse(rule, {f"g{g}": seeds[order[g * SEEDS_PER_GROUP:(g + 1) * SEEDS_PER_GROUP]].tolist()
                                     for g in range(groups)})
    return calls / splits


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vgan_bench_verdict"))
    parser.add_argument("--size", type=frame_size, default=frame_size("32x32"))
    parser.add_argument("--frames", type=int, default=60, help="frames per shot")
    parser.add_argument("--steps", type=int, default=150, help="steps per run")
    parser.add_argument("--handicap-steps", type=int, default=30, help="steps of the handicapped runs")
    parser.add_argument("--seeds", type=int, default=16, help="seeds of the one configuration (the A/A runs)")
    parser.add_argument("--handicapped", type=int, default=8, help="seeds of the handicapped configuration")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data" / "blur"
    if not data.exists():
        train = natural_shots(work / "videos", frames=args.frames, size=args.size, photos=TRAIN_PHOTOS)
        test = natural_shots(work / "videos", frames=args.frames, size=args.size, photos=TEST_PHOTOS)
        run_main("build-dataset", "--video", *train, "--pair", "blur", "--size", f"{args.size.width}x{args.size.height}",
                 "--test", *test, "-o", data, cwd=work)
    root = work / "checkpoints"
    common = [*NETWORK, "--data", data, "--jobs", args.jobs, "--checkpoints", root]
    run_main("sweep", *common, "--max-steps", args.steps, "--seeds", args.seeds, cwd=work)
    run_main("sweep", *common, "--max-steps", args.handicap_steps, "--seeds", args.handicapped, cwd=work)
    run_main("verdict", "--checkpoints", root, "--quiet", "--decide", "psnr", cwd=work)
    record = json.loads((root / "verdict" / "verdict.json").read_text())
    psnr = record["metrics"]["psnr"]["groups"]
    by_steps = {record["groups"][label]["flags"].get("max_steps"): label for label in psnr}
    same = np.array(psnr[by_steps[args.steps]]["seeds"])  # (seeds, clips)
    handicapped = np.array(psnr[by_steps[args.handicap_steps]]["seeds"])
    seed_means = same.mean(axis=1)
    seed_std = float(seed_means.std(ddof=1))
    effect = float(seed_means.mean() - handicapped.mean())
    rng = np.random.default_rng(0)

    print(f"{machine_summary()}; blur -> sharp at {args.size.width}x{args.size.height}, {len(record['clips'])} test clips "
          f"({', '.join(c['name'] for c in record['clips'])}); {args.seeds} seeds at {args.steps} steps, {args.handicapped} at "
          f"{args.handicap_steps}; test PSNR")
    print(f"A/A seeds: mean {seed_means.mean():.3f} dB, seed deviation {seed_std:.3f} dB; handicapped: "
          f"{handicapped.mean():.3f} dB ({effect:+.3f} dB behind)")
    print(f"\n{'':<34}{'groups':>7}{'false worse, verdict':>22}{'false worse, old rule':>23}   a calibrated rule's range (5-95%)")
    for groups in range(2, args.seeds // SEEDS_PER_GROUP + 1):
        rates = [split_share(rule, same, groups, SPLITS, rng) for rule in (decide, against_the_best)]
        normal = [split_share(decide, rng.normal(0.0, 1.0, (len(same), 1)), groups, 100, rng) for _ in range(NORMAL_SAMPLES)]
        low, high = np.quantile(normal, [0.05, 0.95])
        print(f"{'real A/A (random splits of seeds)':<34}{groups:>7}{rates[0]:>22.1%}{rates[1]:>23.1%}   {low:.1%} to {high:.1%} "
              f"(mean {np.mean(normal):.1%})")
    for groups in range(2, 7):
        rates = []
        for rule in (decide, against_the_best):
            calls = sum(called_worse(rule, {f"g{g}": list(rng.normal(0.0, seed_std, SEEDS_PER_GROUP)) for g in range(groups)})
                        for _ in range(SYNTHETIC))
            rates.append(calls / SYNTHETIC)
        print(f"{'synthetic A/A (measured deviation)':<34}{groups:>7}{rates[0]:>22.1%}{rates[1]:>23.1%}")

    found = 0
    for _ in range(SPLITS):
        pick_same = same[rng.choice(len(same), SEEDS_PER_GROUP, replace=False)]
        pick_short = handicapped[rng.choice(len(handicapped), SEEDS_PER_GROUP, replace=False)]
        found += decide({"full": pick_same.tolist(), "handicapped": pick_short.tolist()})["handicapped"].startswith("worse")
    print(f"\npower, {SEEDS_PER_GROUP} seeds against {SEEDS_PER_GROUP}: the handicap ({effect:+.3f} dB) found in "
          f"{found / SPLITS:.0%} of draws (drawn without replacement from {args.seeds} and {args.handicapped} seeds); the "
          f"formula gives {power_of(effect, seed_std, SEEDS_PER_GROUP, 0.05):.0%} for one comparison")
    print("\nseeds a group needs for 80% power at this seed deviation (one comparison; two groups):")
    for difference in (0.05, 0.1, 0.2, 0.5):
        needed = seeds_needed(difference, seed_std, 0.05)
        print(f"  {difference:g} dB: {needed if needed else 'over 1000'}")
    for seeds in (3, 5, 10):
        print(f"  with {seeds} seeds a group the smallest difference found is {minimum_detectable(seed_std, seeds, 0.05):.3f} dB "
              f"({minimum_detectable(seed_std, seeds, 0.05 / 15):.3f} dB among 6 groups: Holm's first threshold of 15 pairs)")


if __name__ == "__main__":
    main()
