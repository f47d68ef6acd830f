"""Trying to break the platform: kills, signals, two runs at once, hostile checkpoints and names,
fuzzed files and flags, numerical faults and memory limits."""
import contextlib
import io
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import main as vgan
from conftest import REPO, TINY, assert_user_error, make_video, run_cli, run_group, spawn, write_blank_dataset
from runfolder.checkpoint import HOLD_WRITE_ENV, load_checkpoint
from runfolder.header import read_header
from runfolder.lock import lock_is_live
from runfolder.metrics import read_metrics

KILL_SEED = 20261125
FUZZ_SEEDS = {"split": 1, "build-dataset": 2, "compare": 3}


def train_cmd(*args):
    return [sys.executable, str(REPO / "main.py"), "train", *map(str, args)]


def wait_for(condition, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def latest_step(folder):
    return max([r["step"] for r in read_metrics(folder)], default=-1)


def equal_states(a, b):
    flat_a, flat_b = torch.utils._pytree.tree_flatten(a)[0], torch.utils._pytree.tree_flatten(b)[0]
    return len(flat_a) == len(flat_b) and all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b))


# 1. Killed mid-write ---------------------------------------------------------------------------

def test_sigkill_mid_write_and_at_random_moments_always_leaves_a_last_pt_that_loads_and_resumes(tmp_path, tiny):
    """4 SIGKILLs of a run that saves every step. Every other kill lands while last.pt is being
    written, placed there by the checkpoint writer's test hook (HOLD_WRITE_ENV: the write holds after
    its first bytes until killed), whatever this machine's speed; the others land at seeded random
    moments. After each, last.pt loads, never goes back, and training resumes."""
    rng = random.Random(KILL_SEED)
    folder = tmp_path / "checkpoints" / "k"
    gate = tmp_path / "hold-checkpoint-write"
    held = tmp_path / "hold-checkpoint-write.held"
    args = ["--data", tiny, *TINY, "--save-every", "1", "--max-steps", "100000", "--name", "k", "--sample-every", "1000",
            "--log-every", "1"]
    env = {**os.environ, HOLD_WRITE_ENV: str(gate)}
    last_step, mid_write = -1, 0
    for cycle in range(4):
        proc = spawn(train_cmd(*args, *(["--resume"] if cycle else [])), cwd=tmp_path, env=env,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (read_header(folder / "last.pt") or {}).get("step", 0) > max(last_step, 0), timeout=300,
                 what="a step saved by this run")
        assert proc.poll() is None, proc.communicate()[1]  # still running: the resume worked
        if cycle % 2:
            gate.touch()  # the next checkpoint write holds after its first bytes
            wait_for(held.exists, timeout=300, what="a checkpoint write held by the hook")
        else:
            time.sleep(rng.uniform(0.0, 1.5))
        proc.kill()
        proc.wait()
        partial = list(folder.glob(".last.pt.partial-*"))
        if cycle % 2:
            assert partial and partial[0].stat().st_size < (folder / "last.pt").stat().st_size  # killed mid-write
            gate.unlink()
            held.unlink()
        mid_write += bool(partial)
        state = load_checkpoint(folder)  # refuses anything damaged
        assert state["step"] >= last_step
        last_step = state["step"]
    assert mid_write >= 2
    done = run_cli("train", *args, "--resume", "--max-steps", last_step + 3, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "taking over from pid" in done.stderr
    assert load_checkpoint(folder)["step"] == last_step + 3
    assert not list(folder.rglob("*.partial-*"))  # the resumed run cleared what the kills left


# 2. Interrupted and resumed ----------------------------------------------------------------------

def test_sigint_and_sigterm_save_exit_130_and_143_and_resume_bitwise(tmp_path, tiny):
    """SIGINT once step 8 of 30 is logged, SIGTERM once step 18 is: each lands mid-run."""
    common = ["--data", tiny, *TINY, "--max-steps", "30", "--log-every", "1", "--seed", "5", "--flip"]
    assert run_cli("train", *common, "--name", "straight", cwd=tmp_path).returncode == 0
    folder = tmp_path / "checkpoints" / "stopped"
    for signum, code, after in ((signal.SIGINT, 130, 8), (signal.SIGTERM, 143, 18)):
        resume = ["--resume"] if folder.exists() else []
        proc = spawn(train_cmd(*common, "--name", "stopped", *resume), cwd=tmp_path, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
        wait_for(lambda: latest_step(folder) >= after, what=f"step {after}")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == code, err
        assert load_checkpoint(folder)["step"] == latest_step(folder) < 30
    assert run_cli("train", *common, "--name", "stopped", "--resume", cwd=tmp_path).returncode == 0
    straight = torch.load(tmp_path / "checkpoints" / "straight" / "last.pt", weights_only=True)
    stopped = torch.load(folder / "last.pt", weights_only=True)
    assert stopped["step"] == straight["step"] == 30
    for part in ("generator", "discriminator", "opt_g", "opt_d"):
        assert equal_states(straight[part], stopped[part]), part
    events = [r["event"] for r in read_metrics(folder) if "event" in r]
    assert events == ["started", "interrupted", "resumed", "interrupted", "resumed", "finished"]


# 3. Two runs, one experiment ---------------------------------------------------------------------

def test_second_run_on_a_live_experiment_is_refused_and_a_killed_runs_lock_is_free(tmp_path, tiny):
    """The live run (of 100,000 steps) is SIGKILLed after its first checkpoint, while it holds the lock."""
    args = ["--data", tiny, *TINY, "--max-steps", "100000", "--name", "x"]
    folder = tmp_path / "checkpoints" / "x"
    live = spawn(train_cmd(*args), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (folder / "last.pt").exists(), what="the first checkpoint")
        assert json.loads((folder / "lock.json").read_text())["pid"] == live.pid and lock_is_live(folder)
        for extra in (["--resume"], []):
            result = run_cli("train", *args, *extra, cwd=tmp_path)
            assert_user_error(result, "checkpoints/x", f"in use by a running train (pid {live.pid}")
    finally:
        live.kill()
        live.wait()
    assert not lock_is_live(folder)  # the kernel released the dead run's lock
    result = run_cli("train", "--name", "x", "--resume", "--max-steps", load_checkpoint(folder)["step"] + 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"taking over from pid {live.pid}" in result.stderr
    assert not (folder / "lock.json").exists() and not lock_is_live(folder)


RACER = """
import sys, time
from runfolder.lock import ExperimentLock
from utils.errors import TrainingError
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # both racers wake at the same moment
try:
    lock = ExperimentLock(sys.argv[1]).acquire()
except TrainingError as exc:
    print("refused", exc.message, flush=True)
    sys.exit(0)
print("took", flush=True)
time.sleep(2)
lock.release()
"""


@pytest.mark.parametrize("attempt", range(3))
def test_two_processes_racing_for_a_stale_lock_never_both_win(tmp_path, attempt):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "lock").write_text("")
    (folder / "lock.json").write_text(json.dumps({"pid": 2 ** 22 + 777, "host": "gone"}))  # left by a killed run
    start = time.time() + 1.5
    racers = [spawn([sys.executable, "-c", RACER, folder, start], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True) for _ in range(2)]
    outcomes = sorted(proc.communicate(timeout=60)[0].split()[0] for proc in racers)
    assert outcomes == ["refused", "took"], outcomes


# 4. Hostile checkpoints --------------------------------------------------------------------------

class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_files(folder, marker):
    state = {"generator": Payload(marker), "network": "unet", "model_args": {}, "config": {}, "step": 0, "version": 1}
    files = {"zip.pt": lambda f: torch.save(state, f), "legacy.pt": lambda f: torch.save(state, f, _use_new_zipfile_serialization=False),
             "raw.pt": lambda f: pickle.dump(state, f)}
    for name, write in files.items():
        with open(folder / name, "wb") as f:
            write(f)
    return [folder / name for name in files]


@pytest.mark.parametrize("command", ["compare", "evaluate", "train"])
def test_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(tmp_path, tiny_run, clip, command):
    marker = tmp_path / "PAYLOAD_RAN"
    for evil in hostile_files(tmp_path, marker):
        if command == "compare":
            result = run_cli("compare", "--video", clip, "--checkpoint", evil, "-o", tmp_path / "out.mp4", cwd=tmp_path)
        elif command == "evaluate":
            result = run_cli("evaluate", "--checkpoint", evil, cwd=tmp_path)
        else:
            experiment = tmp_path / "checkpoints" / evil.stem
            experiment.mkdir(parents=True)
            (experiment / "last.pt").write_bytes(evil.read_bytes())
            result = run_cli("train", "--name", evil.stem, "--resume", cwd=tmp_path)
        line = assert_user_error(result, evil.name if command != "train" else f"{evil.stem}/last.pt")
        assert "could run code" in line or "not a PyTorch checkpoint" in line
        assert not marker.exists()
    assert not (tmp_path / "out.mp4").exists()


def test_damaged_checkpoints_are_refused_with_a_checkpoint_error(tmp_path):
    """400 seeded damaged checkpoints (truncated, bytes flipped, random bytes, pickle-headed noise):
    each loads or is refused as a CheckpointError; nothing else escapes."""
    from utils.errors import CheckpointError

    buffer = io.BytesIO()
    torch.save({"generator": {"w": torch.zeros(50)}, "network": "unet", "model_args": {}, "config": {}, "step": 1, "version": 1}, buffer)
    base = buffer.getvalue()
    rng = np.random.default_rng(7)
    refused = 0
    for i in range(400):
        if i % 4 == 0:
            data = rng.bytes(int(rng.integers(1, 6000)))
        elif i % 4 == 1:
            data = b"\x80\x02" + rng.bytes(int(rng.integers(1, 3000)))
        elif i % 4 == 2:
            data = base[: int(rng.integers(0, len(base)))]
        else:
            damaged = bytearray(base)
            for pos in rng.integers(0, len(damaged), int(rng.integers(1, 40))):
                damaged[pos] ^= int(rng.integers(1, 256))
            data = bytes(damaged)
        (tmp_path / "c.pt").write_bytes(data)
        try:
            load_checkpoint(tmp_path / "c.pt")
        except CheckpointError:
            refused += 1
    assert refused >= 350


# 5. Hostile names and paths ----------------------------------------------------------------------

HOSTILE = "we ird 'q' \"dq\"; touch HACKED1; $(touch HACKED2) `touch HACKED3`\nnew line é ü"


def test_every_command_takes_hostile_paths_literally(tmp_path, sample_video):
    root = tmp_path / HOSTILE
    root.mkdir()
    video = root / f"{HOSTILE}.mp4"
    video.write_bytes(sample_video.read_bytes())
    frames, data, runs = root / "frames dir", root / "missing" / f"data {HOSTILE}", root / f"runs {HOSTILE}"
    steps = [["split", video, "-o", frames, "--fps", "5", "--size", "32"],
             ["build-dataset", "--a", frames, "--b", frames, "-o", data, "--size", "16"],
             ["train", "--data", data, *TINY, "--epochs", "1", "--checkpoints", runs, "--name", HOSTILE],
             ["compare", "--video", video, "--checkpoint", runs / HOSTILE, "-o", root / "new dir" / f"{HOSTILE}.mp4"],
             ["evaluate", "--checkpoint", runs / HOSTILE / "last.pt"]]
    for args in steps:
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, (args[0], result.stderr)
    assert (root / "new dir" / f"{HOSTILE}.mp4").exists() and (runs / HOSTILE / "index.html").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith("HACKED")]


def test_existing_outputs_are_replaced_only_with_overwrite_and_files_never(tmp_path, clip):
    mine = tmp_path / "mine.txt"
    mine.write_text("keep")
    commands = {"split": ["split", clip, "--size", "16"], "build-dataset": ["build-dataset", "--video", clip, "--pair", "gray", "--size", "16"]}
    for name, args in commands.items():
        for extra in ([], ["--overwrite"]):  # a file where a folder goes is never replaced
            assert_user_error(run_cli(*args, "-o", mine, *extra, cwd=tmp_path), mine, "is a file")
            assert mine.read_text() == "keep"
        folder = tmp_path / name
        folder.mkdir()
        (folder / "old.txt").write_text("old")
        assert_user_error(run_cli(*args, "-o", folder, cwd=tmp_path), folder, "--overwrite")
        assert [p.name for p in folder.iterdir()] == ["old.txt"]
        replaced = run_cli(*args, "-o", folder, "--overwrite", cwd=tmp_path)
        assert replaced.returncode == 0, replaced.stderr
        assert not (folder / "old.txt").exists() and len(list(folder.iterdir())) >= 3


# 6. Fuzzed input files ---------------------------------------------------------------------------

class Hang(Exception):
    pass


def run_in_process(argv, seconds=60):
    """main.main(argv) here, bounded in time: (exit code, stderr). An uncaught exception is a
    traceback and fails the test."""
    def alarm(signum, frame):
        raise Hang(f"{argv[0]} ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    err, out = io.StringIO(), io.StringIO()
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = vgan.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    except Exception:
        pytest.fail(f"{argv}: traceback\n{traceback.format_exc()}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue()


def mutations(base, count, seed):
    """Seeded damaged copies of `base`: truncations, flipped bytes, zeroed blocks, and random files."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        data = bytearray(base)
        kind = ["truncate", "flip", "zero", "random"][i % 4]
        if kind == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == "flip":
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 64))):
                data[pos] ^= int(rng.integers(1, 256))
        elif kind == "zero":
            start = int(rng.integers(0, len(data)))
            length = int(rng.integers(1, 4096))
            data[start:start + length] = bytes(len(data[start:start + length]))
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 200_000))))
        yield kind, bytes(data)


@pytest.mark.parametrize("command", ["split", "build-dataset", "compare"])
def test_fuzzed_input_files_end_in_exit_0_or_one_line_error(tmp_path, tiny_run, command):
    base = make_video(tmp_path / "base.mp4", seconds=1, extra=("-movflags", "+faststart")).read_bytes()
    outcomes = {0: 0, 2: 0}
    for i, (kind, data) in enumerate(mutations(base, 80, seed=FUZZ_SEEDS[command])):
        video = tmp_path / f"case{i}.mp4"
        video.write_bytes(data)
        out = tmp_path / "out" / f"case{i}"
        argv = {"split": ["split", video, "-o", out],
                "build-dataset": ["build-dataset", "--video", video, "--pair", "gray", "-o", out, "--size", "16"],
                "compare": ["compare", "--video", video, "--checkpoint", tiny_run[1], "-o", f"{out}.mp4"]}[command]
        code, err = run_in_process(argv)
        assert code in (0, 2), (kind, code, err)
        errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
        if code == 2:
            assert len(errors) == 1 and errors[0].startswith("error: "), (kind, err)
            assert not out.exists() and not os.path.exists(f"{out}.mp4"), kind
        else:
            assert errors == [], (kind, err)
        outcomes[code] += 1
        parent = tmp_path / "out"
        assert not parent.exists() or not [p for p in parent.iterdir() if ".partial" in p.name], kind
    assert outcomes[0] >= 1 and outcomes[2] >= 10, outcomes  # the mutations hit both sides


# 7. Fuzzed command lines -------------------------------------------------------------------------

NOT_POSITIVE_INT = st.one_of(st.integers(max_value=0).map(str), st.floats(allow_nan=True).map(str),
                             st.text(alphabet="abcxyz-_.,e ", min_size=1, max_size=8))
NOT_SIZE = st.one_of(st.sampled_from(["0", "-5", "x", "12x0", "0x12", "axb", "12x", "x12", "1.5", "", " "]),
                     st.integers(max_value=0).map(str))
NOT_POSITIVE_FLOAT = st.one_of(st.floats(max_value=0, allow_nan=False).map(str), st.just("nan"), st.just("inf"),
                               st.text(alphabet="abc-", min_size=1, max_size=5))
FLAGS = [  # (command and valid arguments, flag, invalid values)
    (["train"], "-pool", NOT_POSITIVE_INT), (["train"], "-batch", NOT_POSITIVE_INT), (["train"], "--step", NOT_POSITIVE_INT),
    (["train"], "-epoch", NOT_POSITIVE_INT), (["train"], "--channels", NOT_POSITIVE_INT), (["train"], "--depth", NOT_POSITIVE_INT),
    (["train"], "-lr", NOT_POSITIVE_FLOAT), (["train"], "--crop", NOT_SIZE), (["train"], "--max-steps", NOT_POSITIVE_INT),
    (["train"], "-net", st.text(min_size=1, max_size=10).filter(lambda s: s not in ("unet", "resnet") and not s.startswith("-"))),
    (["train"], "--gan-loss", st.sampled_from(["wgan", "DCGAN", "", "bce"])),
    (["split", "v.mp4"], "--size", NOT_SIZE), (["split", "v.mp4"], "--fps", NOT_POSITIVE_FLOAT),
    (["build-dataset", "--video", "v.mp4", "--pair", "gray"], "--size", NOT_SIZE),
    (["build-dataset", "--video", "v.mp4", "--pair", "gray"], "--val-fraction", st.sampled_from(["1", "1.5", "-0.1", "x", "nan"])),
    (["compare", "--video", "v.mp4"], "--batch", NOT_POSITIVE_INT), (["compare", "--video", "v.mp4"], "--size", NOT_SIZE),
    (["demo"], "--steps", NOT_POSITIVE_INT),
]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(FLAGS).flatmap(lambda c: st.tuples(st.just(c[0]), st.just(c[1]), c[2])))
def test_invalid_flag_values_are_argparse_errors(case):
    prefix, flag, value = case
    code, err = run_in_process([*prefix, f"{flag}={value}"])
    assert code == 2, (case, err)
    # argparse names a flag by all of its names (--clip-frames/-pool/--pool): the one typed is among them
    named = re.search(r"error: argument (\S+):", err)
    assert "usage:" in err and named and flag in named.group(1).split("/") and "Traceback" not in err, err


def test_pool_or_step_longer_than_the_video_is_a_usage_error(tmp_path, tiny):
    for flag, value, words in (("-pool", 60, "is longer than every training segment"), ("--step", 500, "is larger than every")):
        code, err = run_in_process(["train", "--data", tiny, flag, value, "--dry-run"])
        assert code == 2 and "usage:" in err and words in err, err


# 8. Numerical faults -----------------------------------------------------------------------------

def test_constant_frames_train_without_nan(tmp_path):
    video = make_video(tmp_path / "flat.mp4", source="color=c=0x3366cc", size="32x32", seconds=2)
    assert run_cli("build-dataset", "--video", video, "--pair", "gray", "--size", "16", "-o", tmp_path / "flat", cwd=tmp_path).returncode == 0
    result = run_cli("train", "--data", tmp_path / "flat", *TINY, "--epochs", "3", "--log-every", "1", "--name", "flat", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = read_metrics(tmp_path / "checkpoints" / "flat")
    numbers = [v for r in records for k, v in r.items() if "/" in k]
    assert numbers and all(isinstance(v, (int, float)) and np.isfinite(v) for v in numbers)
    state = torch.load(tmp_path / "checkpoints" / "flat" / "last.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["generator"].values())


def test_divergence_stops_at_the_first_non_finite_loss_and_keeps_the_last_finite_state(tmp_path, tiny):
    result = run_cli("train", "--data", tiny, *TINY, "--epochs", "5", "--save-every", "1", "--lr", "1e12", "--name", "d", cwd=tmp_path)
    line = assert_user_error(result, "checkpoints/d", "became", "Lower --lr")
    state = load_checkpoint(tmp_path / "checkpoints" / "d")
    failed = [r for r in read_metrics(tmp_path / "checkpoints" / "d") if r.get("event") == "failed"]
    assert len(failed) == 1 and failed[0]["step"] == state["step"]  # stopped at the step it could not take
    assert f"at step {state['step'] + 1}" in line and f"last.pt keeps step {state['step']}" in line
    for part in ("generator", "discriminator"):
        assert all(torch.isfinite(t).all() for t in state[part].values())


# 9. Resources ------------------------------------------------------------------------------------

def peak_rss(args, cwd, env):
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    done = run_group([sys.executable, "-c", wrapper, sys.executable, REPO / "main.py", *args], cwd=cwd,
                     env={**os.environ, **env}, timeout=600)
    code, peak = done.stdout.split()[-2:]
    return int(code), int(peak), done.stderr


def test_data_larger_than_memory_is_refused_before_loading_and_trains_with_mmap(tmp_path):
    size = write_blank_dataset(tmp_path / "big", frames=20000, side=96)  # 1.1 GB
    limit = {"VGAN_MEMORY_LIMIT": "150M"}
    args = ["train", "--data", tmp_path / "big", *TINY, "--max-steps", "3", "--name", "big"]
    result = run_cli(*args, cwd=tmp_path, env=limit)
    assert_user_error(result, "big", "needs 1.1 GB in memory", "--mmap", "smaller --size")
    assert not (tmp_path / "checkpoints").exists()
    small = write_blank_dataset(tmp_path / "small", frames=100, side=96)
    code, base, err = peak_rss(["train", "--data", tmp_path / "small", *TINY, "--max-steps", "3", "--name", "small", "--mmap"], tmp_path, limit)
    assert code == 0, err
    code, peak, err = peak_rss([*args, "--mmap"], tmp_path, limit)
    assert code == 0, err
    assert peak - base < (size - small) / 4, (peak, base, size)  # resident memory well below the data's size


def test_copies_of_a_stop_signal_do_not_cut_the_save_short_but_a_later_one_stops_at_once(monkeypatch):
    from training.loop import StopSignals

    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the same stop, delivered twice
        assert signals.signum == signal.SIGTERM
        monkeypatch.setattr(StopSignals, "REPEAT_AFTER_S", 0.0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a deliberate second Ctrl-C
