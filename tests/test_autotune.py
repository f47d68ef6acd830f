"""Precision and memory layout: what the flags ask is taken as is, what they leave to auto is
measured once per machine and configuration, and a run keeps its way when resumed."""
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY, run_cli
from runfolder.metrics import read_metrics
from compute import choice, precision
from compute.choice import Compute, candidate_ways, fastest, way_timer

CPU = torch.device("cpu")


def names(ways):
    return [way.name for way in ways]


@pytest.mark.parametrize("native", [True, False])
def test_candidates_are_what_the_flags_leave_open(monkeypatch, native):
    monkeypatch.setattr(choice, "amp_pays_here", lambda device: native)
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: native)
    ask = lambda amp, layout: names(candidate_ways(amp, layout, CPU, quiet=True))  # noqa: E731
    both = ["fp32 contiguous", "fp32 channels_last"]
    assert ask("auto", "auto") == (both + ["bf16 contiguous", "bf16 channels_last"] if native else both)
    assert ask("off", "auto") == both
    assert ask("on", "contiguous") == (["bf16 contiguous"] if native else ["fp32 contiguous"])  # never emulated bfloat16
    assert ask("auto", "channels_last") == (["fp32 channels_last", "bf16 channels_last"] if native else ["fp32 channels_last"])


def test_the_baseline_is_kept_unless_another_way_is_clearly_faster():
    ways = [Compute(False, False), Compute(False, True), Compute(True, False)]
    assert fastest(ways, [1.0, 0.99, 0.985]) == 0  # within the 3% margin: noise, not speed
    assert fastest(ways, [1.0, 0.9, 0.5]) == 2
    assert fastest(ways, [1.0, 1.2, 1.5]) == 0


def train_entries(cache):
    """The cached choices of training ways (the cache also keeps other measurements)."""
    return [value for key, value in json.loads((cache / "compute.json").read_text()).items() if json.loads(key)["job"] == "train"]


def compute_records(folder):
    return [(r["precision"], r["memory_format"], r["compute_choice"]) for r in read_metrics(folder) if r.get("event") in ("started", "resumed")]


def test_auto_is_measured_once_reported_and_kept_on_resume(tmp_path):
    from conftest import build
    from datasets.sample import ensure_sample

    data = build(tmp_path / "d", ensure_sample(tmp_path / "s.mp4"), "gray", 16, fps=5)
    env = {"VGAN_CACHE_DIR": str(tmp_path / "cache")}
    args = ["train", "--data", data, *TINY, "--max-steps", "2"]
    first = run_cli(*args, "--name", "a", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "(auto: fp32 contiguous" in first.stdout  # measured, with the seconds of each way
    (entry,) = train_entries(tmp_path / "cache")
    precision, layout, note = compute_records(tmp_path / "checkpoints" / "a")[0]
    assert entry["way"] == f"{precision} {layout}" and note.startswith("auto: ")
    second = run_cli(*args, "--name", "b", cwd=tmp_path, env=env)
    assert "as measured before on this machine" in second.stdout
    assert compute_records(tmp_path / "checkpoints" / "b")[0][:2] == (precision, layout)
    resumed = run_cli("train", "--name", "a", "--resume", "--max-steps", "3", cwd=tmp_path, env={"VGAN_CACHE_DIR": str(tmp_path / "other")})
    assert resumed.returncode == 0 and "as when the run started" in resumed.stdout
    assert compute_records(tmp_path / "checkpoints" / "a")[1][:2] == (precision, layout)
    asked = run_cli(*args, "--name", "c", "--amp", "off", "--memory-format", "channels_last", cwd=tmp_path, env=env)
    assert "computing in float32, channels_last_3d (as asked)" in asked.stdout
    assert len(train_entries(tmp_path / "cache")) == 1  # nothing measured for it


def test_a_way_whose_step_is_not_finite_is_never_chosen():
    import numpy as np

    from networks import build_generator
    from networks.discriminator import PatchDiscriminator3D
    from training import autotune
    from training.step import LossWeights

    def step_overflowing_in_bf16(copies, x, y, weights, device, amp, guard):
        if amp:  # a loss overflowed: the step's guard trips, and the timer learns it when the step ends
            guard.check([torch.tensor(float("nan"))])

    ways = [Compute(False, False), Compute(False, True), Compute(True, False), Compute(True, True)]
    networks = build_generator("unet", channels=4, depth=2), PatchDiscriminator3D(channels=4, layers=2)
    clips = np.zeros((1, 4, 16, 16, 3), np.uint8)
    time_one = way_timer(ways, autotune.training_step_in(*networks, clips, clips, LossWeights(), torch.device("cpu"),
                                                          step_overflowing_in_bf16), torch.device("cpu"))
    seconds = [time_one(index) for index in range(len(ways))]
    assert [s == float("inf") for s in seconds] == [False, False, True, True]
    assert not ways[fastest(ways, seconds)].amp


# A stand-in for the trial child: bfloat16 contiguous dies, channels_last steps; or (HANG) it hangs;
# or (ABORT_AT_EXIT) every way steps and the child dies after.
FAKE_CHILD = """
import json, os, signal, sys, time
spec = json.load(sys.stdin)
for index, (amp, channels_last) in enumerate(spec["ways"]):
    if os.environ.get("HANG"):
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        time.sleep(10)
    if not channels_last and not os.environ.get("ABORT_AT_EXIT"):
        os.kill(os.getpid(), signal.SIGSEGV)
    print("ok", index, flush=True)
if os.environ.get("ABORT_AT_EXIT"):
    os.abort()
"""


def test_a_bf16_way_whose_trial_child_dies_or_hangs_is_left_out_and_the_rest_are_still_tried(monkeypatch):
    from compute.trial import ways_that_run

    ways = [Compute(False, False), Compute(True, False), Compute(True, True)]
    usable, broken = ways_that_run(ways, {}, child=[sys.executable, "-c", FAKE_CHILD])
    assert names(usable) == ["fp32 contiguous", "bf16 channels_last"]  # tried in a second child after the first died
    assert broken == {"bf16 contiguous": "died (SIGSEGV)"}
    monkeypatch.setenv("HANG", "1")
    usable, broken = ways_that_run(ways, {}, child=[sys.executable, "-c", FAKE_CHILD])
    assert names(usable) == ["fp32 contiguous"] and set(broken) == {"bf16 contiguous", "bf16 channels_last"}
    assert all(how.startswith("hung") for how in broken.values())
    monkeypatch.delenv("HANG")
    monkeypatch.setenv("ABORT_AT_EXIT", "1")
    assert ways_that_run(ways, {}, child=[sys.executable, "-c", FAKE_CHILD]) == (ways, {})  # what stepped is kept


def test_the_trial_child_is_sent_every_loss_weight_of_the_run():
    # The child times the run's own losses: the unpaired modes' cycle and identity weights too.
    from cli.train_flags import default_flags
    from training.run_spec import run_spec
    from training.step import LossWeights
    from training.trial import trial_spec

    config = {**default_flags(), "gan_loss": "hinge", "l1": 7.0, "cycle": 3.0, "identity": 0.25, "temporal": 4.0}
    weights = run_spec(config).weights
    assert weights == LossWeights(gan="hinge", l1=7.0, mse=0.0, temporal=4.0, cycle=3.0, identity=0.25)
    spec = json.loads(json.dumps(trial_spec(run_spec(config), (1, 4, 16, 16), weights)))  # as the child reads it
    assert LossWeights(**spec["weights"]) == weights


def test_the_trial_child_steps_the_real_networks_in_each_way_it_is_given():
    from cli.train_flags import default_flags
    from compute.trial import ways_that_run
    from training.run_spec import run_spec
    from training.step import LossWeights
    from training.trial import CHILD, trial_spec

    config = {**default_flags(), "channels": 4, "depth": 2, "residual": "on", "d_channels": 4, "d_layers": 2}
    spec = trial_spec(run_spec(config), (1, 4, 16, 16), LossWeights())
    done = subprocess.run(CHILD, input=json.dumps({**spec, "ways": [[False, True], [True, False]]}), capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "0", "ok", "1"]
    assert ways_that_run([Compute(False, True)], spec, CHILD) == ([Compute(False, True)], {})  # float32 ways are not tried


def test_bf16_training_at_a_clip_shape_that_crashed_amx_kernels_ends_and_says_how_it_computed(tmp_path):
    """96 x 96 windows of 4 frames in batches of 5: oneDNN's AMX weight-gradient kernel died on it.
    On every CPU kind --amp on must end and say how it computed, in the words of that kind: bfloat16,
    or float32 after the AMX trial refused it, or float32 where bfloat16 is not in hardware at all."""
    from conftest import write_blank_dataset
    from utils.device import native_bf16_cpu

    write_blank_dataset(tmp_path / "d", frames=60, side=96)
    done = run_cli("train", "--data", tmp_path / "d", *TINY, "--max-steps", "2", "--amp", "on", "--device", "cpu",
                   "--memory-format", "contiguous",  # one way: nothing to time (the AMX trial in a child tries both layouts)
                   cwd=tmp_path, env={"VGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    if native_bf16_cpu():
        assert "computing in bfloat16" in done.stdout or "training in float32" in done.stderr, done.stdout + done.stderr
    else:
        assert "computing in float32" in done.stdout and "no native bfloat16" in done.stderr, done.stdout + done.stderr
