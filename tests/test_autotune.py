"""Precision and memory layout: what the flags ask is taken as is, what they leave to auto is
measured once per machine and configuration, and a run keeps its way when resumed."""
import json

import pytest
import torch

from conftest import TINY, run_cli
from training.metrics_log import read_metrics
from utils import compute
from utils.compute import Compute, candidate_ways, fastest

CPU = torch.device("cpu")


def names(ways):
    return [way.name for way in ways]


@pytest.mark.parametrize("native", [True, False])
def test_candidates_are_what_the_flags_leave_open(monkeypatch, native):
    monkeypatch.setattr(compute, "amp_pays_here", lambda device: native)
    monkeypatch.setattr("utils.device.native_bf16_cpu", lambda: native)
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
    cache = json.loads((tmp_path / "cache" / "compute.json").read_text())
    (entry,) = cache.values()
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
    assert len(json.loads((tmp_path / "cache" / "compute.json").read_text())) == 1  # nothing measured for it


def test_a_way_whose_step_is_not_finite_is_never_chosen(monkeypatch):
    from types import SimpleNamespace

    import numpy as np

    from networks import PatchDiscriminator3D, build_generator
    from training import autotune
    from training.step import LossWeights, NonFiniteLoss

    def step_overflowing_in_bf16(copies, x, y, weights, device, amp):
        if amp:
            raise NonFiniteLoss("loss/d_fake became nan")

    monkeypatch.setattr(autotune, "gan_step", step_overflowing_in_bf16)
    ways = [Compute(False, False), Compute(False, True), Compute(True, False), Compute(True, True)]
    nets = SimpleNamespace(raw_generator=build_generator("unet", channels=4, depth=2), raw_discriminator=PatchDiscriminator3D(channels=4, layers=2))
    clips = np.zeros((1, 4, 16, 16, 3), np.uint8)
    time_one = autotune.step_timer(ways, nets, clips, clips, LossWeights(), torch.device("cpu"))
    seconds = [time_one(index) for index in range(len(ways))]
    assert [s == float("inf") for s in seconds] == [False, False, True, True]
    assert not ways[fastest(ways, seconds)].amp
