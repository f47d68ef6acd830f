"""A trained generator leaves vgan: ONNX, checked with ONNX Runtime against eager PyTorch before it is
written (every kind of generator: U-Net, ResNet, (2+1)D, one direction of an unpaired run, a
plug-in), run over a whole video by compare's onnxruntime backend; safetensors, tensors equal bit for
bit to the checkpoint's; and each bad input one line."""
import json
import sys

import numpy as np
import pytest
import torch

import main as vgan
from conftest import TINY, assert_user_error, make_video, run_cli

PLUGIN = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.a, self.b = nn.Conv3d(3, width, 3, padding=1), nn.Conv3d(width, 3, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.b(torch.relu(self.a(x))))


class Histogram(Tiny):
    def forward(self, x):  # torch.histc has no ONNX translation
        return super().forward(x) + 0 * torch.histc(x, 4).sum()


class Counting(Tiny):
    calls = 0

    def forward(self, x):  # each call differs by a number the export bakes in: eager and exported disagree
        Counting.calls += 1
        return super().forward(x) * Counting.calls
'''


def onnx_metadata(path):
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def ort_against_eager(onnx_path, checkpoint, clip):
    """|ONNX Runtime - PyTorch| on `clip`, computed here apart from export's own check."""
    import onnxruntime

    from training.trained_model import load_model

    model = load_model(checkpoint, torch.device("cpu"))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model.generator.float()(clip).numpy()
    return float(np.abs(session.run(None, {"clip": clip.numpy()})[0] - expected).max())


def train(work, data, name, *flags):
    done = run_cli("train", "--data", data, *TINY, "--max-steps", "4", "--name", name, "--amp", "off", *flags, cwd=work)
    assert done.returncode == 0, done.stderr
    return work / "checkpoints" / name


def test_a_u_net_exports_checked_and_runs_over_a_video_in_onnx_runtime_as_in_pytorch(tiny_run, tmp_path):
    work, experiment = tiny_run
    out = tmp_path / "tiny.onnx"
    done = run_cli("export", "--checkpoint", experiment, "-o", out, cwd=work)
    assert done.returncode == 0, done.stderr
    assert "ONNX Runtime matches PyTorch within" in done.stdout
    meta = onnx_metadata(out)
    assert meta["vgan.frames_per_clip"] == "4" and meta["vgan.value_range"] == "[-1, 1]" and meta["vgan.channel_order"] == "RGB"
    assert meta["vgan.run"] == "tiny" and len(meta["vgan.checkpoint_sha256"]) == 64 and json.loads(meta["vgan.config"])["depth"] == 2
    clip = torch.rand(3, 3, 4, 24, 32) * 2 - 1  # another batch and size than export traced
    assert ort_against_eager(out, experiment, clip) <= 1e-3
    video = make_video(tmp_path / "clip.mp4", size="32x24", seconds=1)
    scores = {}
    for backend, flags in (("onnxruntime", ["--backend", "onnxruntime", "--model", out]), ("torch", ["--checkpoint", experiment, "--amp", "off"])):
        done = run_cli("compare", "--video", video, *flags, "-o", tmp_path / f"{backend}.mp4", "--size", "32x24", cwd=work)
        assert done.returncode == 0, done.stderr
        scores[backend] = json.loads((tmp_path / f"{backend}.json").read_text())["scores"]["psnr"]
    assert abs(scores["onnxruntime"] - scores["torch"]) <= 0.01, scores


@pytest.mark.parametrize("flags", [["-net", "resnet", "--blocks", "1", "--downsample", "1"], ["--conv", "2plus1d"]], ids=["resnet", "2plus1d"])
def test_every_built_in_kind_exports_within_the_tolerance(tiny, tmp_path, flags):
    experiment = train(tmp_path, tiny, "kind", *flags)
    out = tmp_path / "kind.onnx"
    done = run_cli("export", "--checkpoint", experiment, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ort_against_eager(out, experiment, torch.rand(2, 3, 4, 16, 32) * 2 - 1) <= 1e-3


def test_a_plug_in_exports_and_one_with_an_operator_onnx_lacks_is_one_line(tiny, tmp_path):
    (tmp_path / "mine.py").write_text(PLUGIN)
    experiment = train(tmp_path, tiny, "mine", "-net", "mine.py:Tiny", "--net-arg", "width=3")
    done = run_cli("export", "--checkpoint", experiment, "-o", tmp_path / "mine.onnx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ort_against_eager(tmp_path / "mine.onnx", experiment, torch.rand(1, 3, 4, 16, 16) * 2 - 1) <= 1e-3
    experiment = train(tmp_path, tiny, "histogram", "-net", "mine.py:Histogram")
    done = run_cli("export", "--checkpoint", experiment, "-o", tmp_path / "histogram.onnx", cwd=tmp_path)
    assert_user_error(done, "cannot be exported to ONNX", "histc")
    assert not list(tmp_path.glob("*histogram.onnx*"))


def test_an_export_that_disagrees_with_pytorch_is_refused_naming_the_difference_and_leaves_no_file(tiny, tmp_path):
    (tmp_path / "mine.py").write_text(PLUGIN)
    experiment = train(tmp_path, tiny, "counting", "-net", "mine.py:Counting")
    done = run_cli("export", "--checkpoint", experiment, "-o", tmp_path / "counting.onnx", cwd=tmp_path)
    line = assert_user_error(done, "counting.onnx", "ONNX Runtime differs from PyTorch by", "frame", "pixel", "not written")
    assert "over 0.001" in line
    assert list(tmp_path.glob("*.onnx*")) == []


def test_one_direction_of_an_unpaired_run_exports(tmp_path):
    a, b = make_video(tmp_path / "a.mp4", size="16x16", seconds=3), make_video(tmp_path / "b.mp4", source="smptebars", size="16x16", seconds=3)
    done = run_cli("build-dataset", "--unpaired", "--a", a, "--b", b, "--size", "16", "-o", tmp_path / "ab", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    experiment = train(tmp_path, tmp_path / "ab", "cycle", "--mode", "cycle")
    out = tmp_path / "b_to_a.onnx"
    done = run_cli("export", "--checkpoint", experiment, "-o", out, "--direction", "BtoA", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert onnx_metadata(out)["vgan.direction"] == "BtoA"
    from training.trained_model import load_model

    back = load_model(experiment, torch.device("cpu"), direction="BtoA")
    clip = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    import onnxruntime

    with torch.inference_mode():
        expected = back.generator(clip).numpy()
    got = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"clip": clip.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-3


def test_safetensors_hold_the_checkpoint_s_tensors_bit_for_bit_and_compare_runs_them(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from training.trained_model import load_model

    work, experiment = tiny_run
    out = tmp_path / "tiny.safetensors"
    assert run_cli("export", "--checkpoint", experiment, "-o", out, cwd=work).returncode == 0
    tensors = load_file(str(out))
    saved = torch.load(experiment / "last.pt", weights_only=True)
    weights = saved["ema"] if saved.get("ema") is not None else saved["generator"]
    assert tensors.keys() == weights.keys() and all(torch.equal(tensors[k], weights[k]) for k in weights)
    again = load_model(out, torch.device("cpu")).generator.state_dict()
    assert all(torch.equal(again[k], weights[k]) for k in weights)
    video = make_video(tmp_path / "clip.mp4", size="16x16", seconds=1)
    done = run_cli("compare", "--video", video, "--checkpoint", out, "-o", tmp_path / "st.mp4", "--amp", "off", cwd=work)
    assert done.returncode == 0, done.stderr
    save_file(tensors, str(tmp_path / "bare.safetensors"))  # the tensors without the run's record
    done = run_cli("compare", "--video", video, "--checkpoint", tmp_path / "bare.safetensors", "-o", tmp_path / "bare.mp4", cwd=work)
    assert_user_error(done, "bare.safetensors", "holds no record of the flags")
    assert not (tmp_path / "bare.mp4").exists()


def test_bad_onnx_input_is_one_line_and_writes_nothing(tiny_run, tmp_path, monkeypatch, capsys):
    work, experiment = tiny_run
    video = make_video(tmp_path / "clip.mp4", size="16x16", seconds=1)
    (tmp_path / "not.onnx").write_bytes(b"this is not a model")
    done = run_cli("compare", "--video", video, "--backend", "onnxruntime", "--model", tmp_path / "not.onnx", "-o", tmp_path / "x.mp4", cwd=work)
    assert_user_error(done, "not.onnx", "is not an ONNX model")
    out = tmp_path / "tiny.onnx"
    assert run_cli("export", "--checkpoint", experiment, "-o", out, cwd=work).returncode == 0
    done = run_cli("compare", "--video", video, "--backend", "onnxruntime", "--model", out, "--window", "6", "-o", tmp_path / "x.mp4", cwd=work)
    assert_user_error(done, "tiny.onnx", "takes clips of 4 frames, not 6")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as where it is not installed
    monkeypatch.chdir(work)
    assert vgan.main(["compare", "--video", str(video), "--backend", "onnxruntime", "--model", str(out), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "pip install onnxruntime" in capsys.readouterr().err
    assert not list(tmp_path.glob("x*"))
