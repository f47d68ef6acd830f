"""Unpaired translation: the datasets, the CycleGAN and Recycle-GAN losses against a hand computation,
the history pool, exact resumes in both modes, the refusals, and a cycle model that learns a colour
grade it never saw aligned (bench/unpaired.py's known-answer task, small)."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from bench.unpaired import GRADE_MATRIX, grade, known_answer_data
from conftest import REPO, assert_user_error, make_video, read_frames, run_cli, run_group
from datasets.slider import UnpairedSlider
from datasets.store import load_dataset
from networks.cycle import CycleGenerators, held, predicted
from networks.losses import cycle_losses
from runfolder.metrics import read_metrics
from training.modes import HistoryPool
from utils.size import Size

SMALL = ["--depth", "2", "--channels", "4", "--d-channels", "4", "--d-layers", "2", "-pool", "4", "--step", "2", "-batch", "2",
         "--amp", "off", "--memory-format", "contiguous", "--device", "cpu"]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Side A: two test patterns of 40 and 30 frames; side B: one of 50 (16x16 once built)."""
    folder = tmp_path_factory.mktemp("unpaired_footage")
    return ([make_video(folder / "a1.mp4", "testsrc2", "32x32", 10, 4), make_video(folder / "a2.mp4", "testsrc", "32x32", 10, 3)],
            [make_video(folder / "b1.mp4", "smptebars", "32x32", 10, 5)])


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory, footage):
    out = tmp_path_factory.mktemp("unpaired_data") / "ab"
    result = run_cli("build-dataset", "--unpaired", "--a", *footage[0], "--b", *footage[1], "-o", out, "--size", "16",
                     "--val-fraction", "0.4")
    assert result.returncode == 0, result.stderr
    return out


class Scale(nn.Module):
    """A stand-in generator: x * factor + shift, so that every term can be computed by hand."""

    def __init__(self, factor, shift=0.0):
        super().__init__()
        self.factor, self.shift = factor, shift

    def forward(self, x):
        return x * self.factor + self.shift


def test_an_unpaired_dataset_keeps_each_side_its_own_length_segments_and_validation(unpaired, footage):
    dataset = load_dataset(unpaired)
    meta = json.loads((unpaired / "meta.json").read_text())
    assert meta["unpaired"] is True and dataset.a.shape == (70, 16, 16, 3) and dataset.b.shape == (50, 16, 16, 3)
    assert [s["video"] for s in meta["segments"]] == [str(v) for v in footage[0]]
    assert dataset.ranges("train", "a") == [(0, 24), (40, 58)] and dataset.ranges("val", "a") == [(24, 40), (58, 70)]
    assert dataset.ranges("train", "b") == [(0, 30)] and dataset.ranges("val", "b") == [(30, 50)]


def test_unpaired_batches_draw_each_side_apart_and_the_shorter_side_goes_round(unpaired):
    dataset = load_dataset(unpaired)
    slider = UnpairedSlider(dataset.a, dataset.b, dataset.ranges("train", "a"), [(0, 12)], clip_frames=4, stride=2, batch_size=2, seed=1)
    a_windows, b_windows = slider.sides[0].windows, slider.sides[1].windows
    assert (a_windows, b_windows) == (19, 5) and len(slider) == 10  # an epoch: the longer side's batches
    batches = slider.epoch_batches(0)
    assert sorted(np.concatenate([a for a, _ in batches])) == list(range(a_windows))  # each A window once
    assert [len(a) for a, _ in batches] == [len(b) for _, b in batches] == [2] * 9 + [1]  # the same clips a side, step by step
    drawn_b = np.concatenate([b for _, b in batches])
    assert all(sorted(drawn_b[k:k + 5]) == list(range(5)) for k in (0, 5, 10))  # B's 5 windows, round after round
    assert drawn_b[:5].tolist() != drawn_b[5:10].tolist()  # each round in a fresh order
    a, b = slider.gather(batches[0], 0, 0)
    assert a.shape == b.shape == (2, 4, 16, 16, 3)
    np.testing.assert_array_equal(b[0], dataset.b[slider.sides[1].starts[batches[0][1][0]] + np.arange(4)])
    assert [x.tolist() for x in np.concatenate(slider.epoch_batches(0), axis=1)] == [x.tolist() for x in np.concatenate(batches, axis=1)]


def test_cycle_and_recycle_losses_match_a_hand_computation():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 4, 5, 5) * 2 - 1, torch.rand(2, 3, 4, 5, 5) * 2 - 1
    generators = CycleGenerators(Scale(0.5), Scale(1.0, 0.25), predictor_a=Scale(2.0), predictor_b=Scale(1.0, -0.5))
    losses = cycle_losses(a, b, generators(a, b))
    an, bn = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    ab, ba = (lambda x: 0.5 * x), (lambda x: x + 0.25)
    l1 = lambda x, y: np.abs(x - y).mean()  # noqa: E731
    assert losses["g_cycle"].item() == pytest.approx(l1(ba(ab(an)), an) + l1(ab(ba(bn)), bn), rel=1e-5)
    assert losses["g_identity"].item() == pytest.approx(l1(ba(an), an) + l1(ab(bn), bn), rel=1e-5)
    # The predictors see the window with its last frame hidden (the one before repeated) and predict it.
    assert losses["g_recurrent"].item() == pytest.approx(l1(2.0 * an[:, :, -2:-1], an[:, :, -1:]) + l1(bn[:, :, -2:-1] - 0.5, bn[:, :, -1:]),
                                                         rel=1e-5)
    # Recycle: A's last frame by way of B (G_AB, then P_B predicts it there, then G_BA brings it back), and the other way.
    recycled_a = ba(ab(an[:, :, -2:-1]) - 0.5)
    recycled_b = ab(2.0 * ba(bn[:, :, -2:-1]))
    assert losses["g_recycle"].item() == pytest.approx(l1(recycled_a, an[:, :, -1:]) + l1(recycled_b, bn[:, :, -1:]), rel=1e-5)
    clip = torch.arange(4.0).view(1, 1, 4, 1, 1)
    assert held(clip).flatten().tolist() == [0, 1, 2, 2]
    assert predicted(Scale(10.0), clip).flatten().tolist() == [0, 1, 2, 20]


def test_the_history_pool_shows_new_clips_until_full_then_half_of_them_from_its_past_and_resumes_exactly():
    pool = HistoryPool(size=3, seed=5)
    first = torch.arange(3.0).view(3, 1)
    assert torch.equal(pool(first), first) and len(pool.clips) == 3  # filling: every clip shown as it is
    state = pool.state_dict()
    later = torch.arange(100.0, 140.0).view(40, 1)
    shown = pool(later)
    from_past = int((shown < 100).sum()) + int(sum(1 for s, n in zip(shown, later) if s >= 100 and s != n))
    assert 10 <= from_past <= 30  # about half (binomial, 40 draws)
    again = HistoryPool(size=3, seed=0)
    again.load_state_dict(state, torch.device("cpu"))
    assert torch.equal(again(later), shown)  # the saved pool and draws give the same clips
    assert torch.equal(HistoryPool(size=0, seed=0)(later), later)


@pytest.mark.parametrize("mode", ["cycle", "recycle"])
def test_resume_in_an_unpaired_mode_gives_bitwise_the_same_networks_and_pools(tmp_path, unpaired, mode):
    common = ["--data", unpaired, *SMALL, "--mode", mode, "--pool-size", "3", "--seed", "2", "--flip", "--ema", "0.9"]
    assert run_cli("train", *common, "--max-steps", "8", "--epochs", "100", "--name", "straight", cwd=tmp_path).returncode == 0
    assert run_cli("train", *common, "--max-steps", "4", "--epochs", "100", "--name", "split", cwd=tmp_path).returncode == 0
    resumed = run_cli("train", "--name", "split", "--resume", "--max-steps", "8", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(tmp_path / "checkpoints" / name / "last.pt", weights_only=True) for name in ("straight", "split"))
    assert a["step"] == b["step"] == 8 and a["config"]["mode"] == mode and a["config"]["gan_loss"] == "lsgan"
    assert len(a["step_state"]["a"]["clips"]) == 3  # the pool was full, and drawing from its past, before the split
    for part in ("generator", "discriminator", "opt_g", "opt_d", "ema", "step_state"):
        flat_a, flat_b = torch.utils._pytree.tree_flatten(a[part])[0], torch.utils._pytree.tree_flatten(b[part])[0]
        assert len(flat_a) == len(flat_b) and all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b))
    if mode == "recycle":
        assert any(key.startswith("predictor_a.") for key in a["generator"])
    scores = [r for r in read_metrics(tmp_path / "checkpoints" / "straight") if "val/cycle_psnr" in r]
    assert [r["step"] for r in scores] == [0, 8] and {"val/cycle_psnr_ab", "val/cycle_psnr_ba", "val/flicker_ab"} <= set(scores[-1])
    assert "val/flicker_ba" not in scores[-1]  # side B's held-out frames are a still test card: no motion to be as steady as
    assert (tmp_path / "checkpoints" / "straight" / "samples" / "epoch_0001.png").exists()  # A, A to B, back; B, B to A, back
    assert "validation cycle PSNR" in (tmp_path / "checkpoints" / "straight" / "index.html").read_text()


def test_paired_and_unpaired_data_and_modes_are_refused_across(tmp_path, unpaired, footage, tiny):
    assert_user_error(run_cli("train", "--data", unpaired, *SMALL, "--max-steps", "1", cwd=tmp_path), str(unpaired), "unpaired",
                      "--mode cycle")
    assert_user_error(run_cli("train", "--data", tiny, *SMALL, "--mode", "cycle", "--max-steps", "1", cwd=tmp_path), str(tiny),
                      "--unpaired")
    assert_user_error(run_cli("train", "--data", unpaired, *SMALL, "--mode", "recycle", "--temporal", "1", "--max-steps", "1",
                              cwd=tmp_path), "--temporal")
    for flags, named in ((["--b", footage[1][0], "--flow"], "--flow is for paired data"), ([], "--b VIDEO")):
        result = run_cli("build-dataset", "--unpaired", "--a", footage[0][0], *flags, "-o", tmp_path / "x", cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr and named in result.stderr.splitlines()[-1]
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_the_grade_of_the_known_answer_task_is_strong_and_invertible():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    graded = grade(frames).astype(np.float64) / 255.0
    undone = np.clip((graded ** (1 / 1.7)) @ np.linalg.inv(GRADE_MATRIX).T, 0, 1) * 255
    assert np.abs(undone - frames).mean() < 2.0  # the answer is the frames before the grade, up to rounding
    assert np.abs(graded * 255 - frames).mean() > 30  # and the graded frames are far from it


POINTWISE = '''
from torch import nn


class Pointwise(nn.Module):
    """A colour transform per pixel: 1x1x1 convolutions, all a colour grade needs."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv3d(3, width, 1), nn.LeakyReLU(0.2), nn.Conv3d(width, width, 1), nn.LeakyReLU(0.2),
                                 nn.Conv3d(width, 3, 1), nn.Tanh())

    def forward(self, x):
        return self.net(x)
'''


def test_a_cycle_model_of_your_own_network_learns_a_colour_grade_it_never_saw_aligned(tmp_path):
    """bench/unpaired.py's known-answer task, small: graded shots on one side, other shots of the
    same photographs ungraded on the other; scored on A's held-out frames against their ungraded
    selves. 150 steps of a per-pixel generator from the user's file, seed 0: +2.3 dB over the
    identity on an AVX2 EPYC (+0.9 to +1.3 dB with other seeds or discriminators), so the test
    asks for +0.5 dB."""
    (tmp_path / "pointwise.py").write_text(POINTWISE)
    unpaired_data, answer = known_answer_data(tmp_path / "data", Size(16, 16), frames=24)
    flags = ["-net", "pointwise.py:Pointwise", "-pool", "3", "--step", "2", "-batch", "4", "--d-channels", "8", "--d-layers", "1",
             "--amp", "off", "--memory-format", "contiguous", "--device", "cpu", "--seed", "0", "--sample-every", "1000"]
    trained = run_cli("train", "--data", unpaired_data, "--mode", "cycle", *flags, "--max-steps", "150", "--epochs", "1000",
                      "--name", "grade", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    result = run_cli("evaluate", "--checkpoint", tmp_path / "checkpoints" / "grade", "--data", answer, "--direction", "AtoB",
                     "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)["scores"]
    assert scores["psnr"] >= scores["psnr_identity"] + 0.5, scores


def test_compare_translates_either_way_and_scores_the_round_trip_without_a_target(tmp_path, unpaired, footage):
    trained = run_cli("train", "--data", unpaired, *SMALL, "--mode", "cycle", "--max-steps", "2", "--name", "c", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "checkpoints" / "c"
    widths = {}
    for direction, video, target in (("AtoB", footage[0][0], None), ("BtoA", footage[1][0], footage[1][0])):
        out = tmp_path / f"{direction}.mp4"
        result = run_cli("compare", "--video", video, "--checkpoint", checkpoint, "--direction", direction, "-o", out,
                         *(["--target", target] if target else []), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"{direction[0]} to {direction[-1]})" in result.stdout and "input | translated | back" in result.stdout
        scores = json.loads(out.with_suffix(".json").read_text())["scores"]
        assert {"cycle_psnr", "cycle_ssim", "masked_warp_error", "masked_warp_error_input", "seam"} <= set(scores)
        assert ("psnr" in scores) == (target is not None)  # PSNR against an answer only when there is one
        widths[direction] = read_frames(out).shape[2]
    assert widths["BtoA"] * 3 == widths["AtoB"] * 4  # input | translated | back, and the target beside them


def test_recycle_under_torchrun_keeps_both_ranks_identical(tmp_path, unpaired):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(REPO / "main.py"), "train",
           "--data", str(unpaired), *SMALL, "--mode", "recycle", "--max-steps", "4", "--name", "ddp"]
    result = run_group(cmd, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = [r for r in read_metrics(tmp_path / "checkpoints" / "ddp") if r.get("event") == "finished"]
    assert finished == [{"step": 4, "epoch": 1, "event": "finished", "world_size": 2, "ranks_agree": True}]
