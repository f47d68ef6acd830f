"""Benchmarks: each module prints ours beside a baseline measured in the same run, with the machine.
What they share: running vgan's own command line, as a user would, in a process of its own."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_main(*args, cwd):
    """`python main.py ARGS` in `cwd`; its CompletedProcess, or the end of its errors and an exit when it fails."""
    done = subprocess.run([sys.executable, str(REPO / "main.py"), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args[:2]))} failed:\n{done.stderr[-2000:]}")
    return done
