"""A grid of training runs: every combination of the swept flag values, times seeds. Each point is
an ordinary experiment folder named after its flags and seed, so a sweep started again skips the
finished points and resumes the interrupted one.

    points = expand_grid({"network": ["unet", "resnet"], "gan_loss": ["dcgan", "none"]}, seeds=3)
    Point(points[0], flags).train_argv("checkpoints")   # -> ["--network", "unet", "--gan-loss", "dcgan", "--seed", "0", ...]
"""
import ctypes
import hashlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from datasets.sample import SAMPLE_DATA
from runfolder.events import FINISHED, PRUNED, RUNNING, run_status
from runfolder.layout import CheckpointsRoot, RunFolder
from utils.fsio import make_folder
from utils.gpus import GpuPool

MAX_NAME = 120
PR_SET_PDEATHSIG = 1


def expand_grid(grid, seeds):
    """[{dest: value, ..., "seed": s}, ...]: the cartesian product of the value lists, seeds innermost,
    in the order the flags were declared."""
    names = list(grid)
    points = []
    for values in itertools.product(*(grid[name] for name in names)):
        for seed in range(seeds):
            points.append({**dict(zip(names, values)), "seed": seed})
    return points


def format_value(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    if isinstance(value, dict):  # --net-arg's NAME=VALUE pairs
        return ",".join(f"{name}={item}" for name, item in value.items())
    return str(value)


def for_its_networks(values):
    """A point's values without --net-arg (--disc-arg) where its network is a built-in, which takes
    flags instead: sweeping (or searching) a plug-in's arguments beside a built-in trains the
    built-in as it is."""
    from networks import discriminator_spec, generator_spec

    for dest, network, spec_of in (("net_args", "network", generator_spec), ("disc_args", "disc", discriminator_spec)):
        if dest in values and spec_of(values.get(network, "unet" if network == "network" else "patch")).builtin:
            values = {key: value for key, value in values.items() if key != dest}
    return values


class Point:
    """One run of a sweep: {dest: value} of its swept flags and its seed, and `flags` {dest: Flag} of
    the train schema, which says how each is typed."""

    def __init__(self, values, flags, name=None):
        self.values, self.flags, self.given_name = values, flags, name

    @property
    def name(self):
        """The experiment name (unless given): the data folder, then flag-value pairs, then the
        seed; the same for the same flags and values."""
        if self.given_name:
            return self.given_name
        data = Path(str(self.values.get("data", SAMPLE_DATA))).name
        parts = [data] + [f"{self._typed(dest).lstrip('-')}-{format_value(value)}" for dest, value in self.values.items()
                          if dest not in ("data", "seed")]
        name = "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", part) for part in parts)
        if len(name) > MAX_NAME:  # keep names usable as folder names; the hash keeps them distinct
            name = name[:MAX_NAME - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
        return f"{name}_seed{self.values['seed']}"

    def _typed(self, dest):
        return self.flags[dest].names[-1]

    def train_argv(self, checkpoints, resume=False):
        """The `main.py train` arguments of this point, writing into `checkpoints`."""
        argv = []
        for dest, value in self.values.items():
            if self.flags[dest].is_switch:
                argv += self.flags[dest].switch_argv(value)
            elif isinstance(value, dict):
                argv += [token for name, item in value.items() for token in (self._typed(dest), f"{name}={item}")]
            else:
                argv += [self._typed(dest), format_value(value)]
        return argv + ["--name", self.name, "--checkpoints", str(checkpoints)] + (["--resume"] if resume else [])


def point_plan(folder):
    """What a sweep does with a point, from its run's status: 'done' (finished, or pruned by a
    search) or 'running' (left alone), 'resume' (from its checkpoint) or 'new'."""
    folder = RunFolder(folder)
    status = run_status(folder)
    if status in (RUNNING, FINISHED, PRUNED):
        return "running" if status == RUNNING else "done"
    return "resume" if folder.last.exists() else "new"


def die_with_parent():
    """In the child: get SIGTERM (save and exit) if the sweep itself dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def thread_share(sharing_cores_with):
    """CPU threads for one of `sharing_cores_with` runs side by side: an equal share of the cores this
    process may run on (its affinity, as taskset and cgroups set it), and never more than a thread
    count the user set (OMP_NUM_THREADS), so that runs never ask for more threads than there are cores:
    OpenMP threads that wait for a core spin, and a step then takes several times as long."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // sharing_cores_with)
    asked = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(asked)) if asked.isdigit() and int(asked) > 0 else share


def start_training(main_py, argv, sharing_cores_with=1, log_for=None, cwd=None, gpus=None):
    """`main.py train ARGV` started as a child with an equal share of this machine's CPU threads
    among `sharing_cores_with` runs, and only the GPUs `gpus` (when given) in sight, stopping (with
    a save) if its parent dies; its output appended to the checkpoints root's sweep log of the
    point when `log_for` names its folder."""
    env = {**os.environ, "OMP_NUM_THREADS": str(thread_share(sharing_cores_with))}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    command = [sys.executable, str(main_py), "train", *argv]
    if log_for is None:
        return subprocess.Popen(command, cwd=cwd, env=env, preexec_fn=die_with_parent)
    log_file = CheckpointsRoot(Path(log_for).parent).sweep_log(Path(log_for).name)
    make_folder(log_file.parent)
    with open(log_file, "a") as log:
        return subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)


def run_points(jobs, main_py, checkpoints, parallel, on_done, gpus=()):
    """Run [(name, argv)] training commands, `parallel` at a time; call on_done(name, returncode)
    after each. Children get an equal share of the CPU threads and one of `gpus` each (the least
    used), and stop with the sweep."""
    pending, active, codes = list(jobs), {}, {}
    pool, held = GpuPool(gpus), {}
    try:
        while pending or active:
            while pending and len(active) < parallel:
                name, argv = pending.pop(0)
                log = Path(checkpoints) / name if parallel > 1 else None  # one point at a time: its output here
                held[name] = pool.take(1)
                active[name] = start_training(main_py, argv, sharing_cores_with=parallel, log_for=log, gpus=held[name])
            for name, proc in list(active.items()):
                if proc.poll() is not None:
                    codes[name] = proc.returncode
                    del active[name]
                    pool.give_back(held.pop(name))
                    on_done(name, proc.returncode)
            time.sleep(0.2)
    except BaseException:
        for proc in active.values():  # Ctrl-C: every running point saves and exits
            proc.send_signal(signal.SIGINT)
        for proc in active.values():
            proc.wait()
        raise
    return codes
