"""What the test suite's zygote (tests/zygote.py) saves per command: `python main.py ARGS` as a
fresh interpreter against the same command as a child forked from the zygote, in turns, on one
thread (as each test worker runs). Two commands: a refused one (bad input, one line, exit 2) and a
4-step training of a tiny network.
    python -m bench.zygote --rounds 4
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from utils.device import machine_summary

REPO = Path(__file__).resolve().parent.parent


def tiny_dataset(folder):
    from conftest import build  # the test suite's own helper: a derived pair of the sample at 16 x 16
    from datasets.sample import ensure_sample

    return build(folder / "tiny", ensure_sample(folder / "sample.mp4"), "gray", 16, fps=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import Zygote  # the tests' helpers, imported after the thread count is set, as in a test worker

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = tiny_dataset(work)
        train = ["train", "--data", data, "--depth", "2", "--channels", "4", "--d-channels", "4", "--d-layers", "2", "-pool", "4",
                 "--step", "2", "--max-steps", "4", "--amp", "off", "--memory-format", "contiguous", "--checkpoints", work / "checkpoints"]
        commands = {  # name -> the command line of one run (each training into a folder of its own)
            "refused (bad input)": lambda run: ["build-dataset", "--a", work / "missing.mp4", "--b", work / "missing.mp4", "-o", work / "out"],
            "train 4 steps": lambda run: [*train, "--name", run],
        }
        zygote = Zygote(work)
        seconds = {(name, way): [] for name in commands for way in ("fresh", "zygote")}
        try:
            for round_ in range(args.rounds):
                for name, command in commands.items():
                    for way in ("fresh", "zygote"):
                        argv = [str(part) for part in command(f"r{round_}{way}")]
                        started = time.perf_counter()
                        if way == "fresh":
                            subprocess.run([sys.executable, str(REPO / "main.py"), *argv], cwd=work, capture_output=True)
                        else:
                            zygote.run(argv, work, dict(os.environ), 600)
                        seconds[(name, way)].append(time.perf_counter() - started)
        finally:
            zygote.close()
    print(machine_summary())
    print(f"seconds per command, median of {args.rounds}, the two ways in turns, one thread")
    print(f"{'command':<24}{'fresh python':>14}{'zygote child':>14}{'ratio':>8}")
    for name in commands:
        fresh, child = (statistics.median(seconds[(name, way)]) for way in ("fresh", "zygote"))
        print(f"{name:<24}{fresh:>14.2f}{child:>14.2f}{fresh / child:>7.1f}x")


if __name__ == "__main__":
    main()
