"""The run spec: one frozen record of a run, built once; and config.json, its form on disk, as
today's and earlier vgans wrote it: a run folder written before the record existed (kept in
tests/fixtures/old_run, with its tiny dataset) still loads, resumes and compares."""
import dataclasses
import json
import shutil

import pytest
import torch

import main as vgan
from cli.train_flags import default_flags
from conftest import REPO, make_video
from networks.plugin import NetworkSpec
from training.run_spec import run_spec, saved_run_spec

OLD_RUN = REPO / "tests" / "fixtures" / "old_run"


def test_the_spec_holds_each_part_typed_and_frozen():
    config = {**default_flags(), "network": "unet", "channels": 8, "depth": 2, "conv": "2plus1d", "residual": "on",
              "gan_loss": "none", "pool": 7, "step": 2, "l1": 50.0}
    spec = run_spec(config)
    assert isinstance(spec.generator.spec, NetworkSpec) and spec.generator.spec.builtin == "unet"
    assert dict(spec.generator.args) == {"channels": 8, "depth": 2, "temporal_pool": False, "conv": "2plus1d", "residual": True}
    assert spec.discriminator is None and not spec.gan_loss.adversary  # --gan-loss none trains no discriminator
    assert (spec.clip_frames, spec.stride, spec.weights.l1, spec.mode.unpaired) == (7, 2, 50.0, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.clip_frames = 9
    with pytest.raises(TypeError):
        spec.flags["pool"] = 9  # the flags are read-only too
    assert spec.config == config and spec.config is not spec.flags


def test_a_run_folder_written_before_the_run_spec_loads_resumes_and_compares(tmp_path, monkeypatch):
    shutil.copytree(OLD_RUN, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    from training.trained_model import load_model

    model = load_model("checkpoints/old_run", torch.device("cpu"))
    assert model.averaged and model.state["step"] == 6  # it kept a weight average (--ema 0.9)
    spec = saved_run_spec(model.state)
    assert dict(spec.generator.args) == model.state["model_args"] and spec.clip_frames == 4
    assert vgan.main(["train", "--name", "old_run", "--resume", "--max-steps", "8"]) == 0
    assert torch.load("checkpoints/old_run/last.pt", weights_only=True)["step"] == 8
    assert json.loads((tmp_path / "checkpoints/old_run/config.json").read_text())["ema"] == 0.9
    video = make_video(tmp_path / "clip.mp4", size="16x16", seconds=1)
    assert vgan.main(["compare", "--video", str(video), "--checkpoint", "checkpoints/old_run", "-o", "cmp.mp4"]) == 0
    assert json.loads((tmp_path / "cmp.json").read_text())["scores"]["psnr"] > 5


def test_a_checkpoint_that_names_few_flags_still_describes_its_run():
    # A checkpoint written by other tools (bench/compare.py's) names the network and the clip, and little else.
    state = {"config": {"pool": 9, "mode": "paired", "network": "unet"}, "network": "unet", "model_args": {"channels": 4, "depth": 2}}
    spec = saved_run_spec(state)
    assert spec.clip_frames == 9 and spec.stride == 1 and spec.gan_loss.adversary and spec.weights.l1 == 100.0
    assert spec.build_generator("cpu").size_multiple == 4
