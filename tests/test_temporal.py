"""Temporal consistency in training and inference: the temporal loss against a hand computation,
the stored flow, the weight average, and the refusals."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import TINY, assert_user_error, build, run_cli
from datasets.flow import load_flow
from datasets.store import fingerprint, load_dataset
from networks.losses import temporal_loss
from training.ema import WeightAverage
from metrics.temporal import optical_flow, pair_flow


def clip_of(*frames):
    """(1, 1, T, 2, W): each frame a row of values, repeated on 2 rows."""
    return torch.tensor(frames, dtype=torch.float32)[None, None, :, None, :].repeat(1, 1, 1, 2, 1)


def test_the_temporal_loss_is_the_masked_l1_to_the_warped_previous_frame():
    fake = clip_of([0.1, 0.2, 0.3, 0.4], [0.9, 0.15, 0.25, 0.5])
    flow = torch.zeros(1, 2, 2, 2, 4)
    flow[:, 0, 1] = -1.0  # frame 1's pixels were one column to the left in frame 0
    mask = torch.ones(1, 1, 2, 2, 4)
    # column 0 came from outside the frame: left out; columns 1..3 compare with frame 0's columns 0..2
    expected = (abs(0.15 - 0.1) + abs(0.25 - 0.2) + abs(0.5 - 0.3)) / 3
    assert temporal_loss(fake, flow, mask).item() == pytest.approx(expected)
    mask[:, :, 1, :, 3] = 0  # occluded in the target: left out too
    assert temporal_loss(fake, flow, mask).item() == pytest.approx((0.05 + 0.05) / 2)
    flow[:, 0, 1] = -0.5  # half a pixel: bilinear between the two neighbours
    mask[...] = 1
    halfway = (abs(0.15 - 0.15) + abs(0.25 - 0.25) + abs(0.5 - 0.35)) / 3
    assert temporal_loss(fake, flow, mask).item() == pytest.approx(halfway)


def test_a_clip_that_follows_the_flow_has_no_temporal_loss_and_the_gradient_reaches_both_frames():
    row = torch.linspace(-1, 1, 8)
    fake = torch.stack([row.roll(t) for t in range(3)])[None, None, :, None, :].repeat(1, 3, 1, 4, 1).requires_grad_(True)
    flow = torch.zeros(1, 2, 3, 4, 8)
    flow[:, 0] = -1.0
    mask = torch.ones(1, 1, 3, 4, 8)
    mask[..., 0] = 0  # what rolled in on the left is new
    assert temporal_loss(fake, flow, mask).item() == pytest.approx(0, abs=1e-6)
    flicker = fake + torch.tensor([0.0, 0.2, 0.0])[None, None, :, None, None]  # the middle frame brighter
    loss = temporal_loss(flicker, flow, mask)
    assert loss.item() == pytest.approx(0.2, abs=1e-5)
    loss.backward()
    assert fake.grad[:, :, 0].abs().sum() > 0 and fake.grad[:, :, 2].abs().sum() > 0


def test_the_weight_average_ramps_its_decay_up_and_moves_each_weight_towards_the_trained_one():
    net = torch.nn.Linear(2, 1)
    average = WeightAverage(net, decay=0.99)
    assert average.decay_at(0) == pytest.approx(0.1) and average.decay_at(10 ** 6) == 0.99
    start = average.module.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    average.update(net, step=0)
    assert torch.allclose(average.module.weight, start + 0.9)  # (1 - 0.1) of the way at the first step
    assert not average.module.weight.requires_grad


@pytest.fixture(scope="module")
def with_flow(tmp_path_factory, sample_video):
    folder = tmp_path_factory.mktemp("data") / "tiny_flow"
    return build(folder, sample_video, "gray", 16, fps=5, flow=True)


def test_build_dataset_stores_the_targets_flow_once_and_add_flow_adds_it_later(tmp_path, sample_video, with_flow):
    dataset = load_dataset(with_flow)
    flow, mask = load_flow(dataset)
    assert flow.dtype == np.float16 and mask.dtype == np.uint8 and flow.shape == dataset.b.shape[:3] + (2,)
    t = 7
    np.testing.assert_allclose(flow[t], pair_flow(dataset.b[t], dataset.b[t - 1]).backward, atol=1e-2)  # float16
    assert not mask[0].any()  # the first frame has none before it
    plain = build(tmp_path / "plain", sample_video, "gray", 16, fps=5, flow=False)
    before = fingerprint(plain)
    result = run_cli("build-dataset", "--add-flow", plain, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert fingerprint(plain) == before  # runs trained on it resume as they were
    np.testing.assert_array_equal(load_flow(load_dataset(plain))[0], flow)
    record = json.loads((plain / "flow.json").read_text())
    assert "DIS" in record["method"] and record["frames"] == len(dataset.b)


def test_frames_smaller_than_dis_takes_still_get_a_flow():
    rng = np.random.default_rng(0)
    for shape in ((4, 4), (6, 30), (11, 11)):  # DIS refuses each of these as it is
        frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        moved = np.roll(frame, 1, axis=1)
        still, flow = optical_flow(frame, frame), optical_flow(frame, moved)
        assert still.shape == flow.shape == (*shape, 2) and not still.any()
        assert flow.any()  # the frame's own pixels, not the padding alone


def test_without_flow_the_default_trains_without_the_temporal_loss_and_a_typed_weight_is_refused(tmp_path, sample_video, with_flow):
    plain = tmp_path / "plain"
    built = run_cli("build-dataset", "--video", sample_video, "--pair", "gray", "--size", "16", "--fps", "5", "--no-flow", "-o", plain,
                    cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert not (plain / "flow.npy").exists() and not (plain / "flow.json").exists()
    for data, name in ((plain, "plain"), (with_flow, "flow")):
        trained = run_cli("train", "--data", data, *TINY, "--max-steps", "1", "--name", name, cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr
        logged = [json.loads(line) for line in (tmp_path / "checkpoints" / name / "metrics.jsonl").read_text().splitlines()]
        temporal = [r["loss/g_temporal"] for r in logged if "loss/g_temporal" in r]
        if data == plain:
            assert "temporal loss 0 (off: " in trained.stdout and f"build-dataset --add-flow {plain}" in trained.stdout
            assert not temporal
        else:
            assert "temporal loss 10 (the default" in trained.stdout and temporal and temporal[0] > 0
    refused = run_cli("train", "--data", plain, *TINY, "--max-steps", "1", "--temporal", "1", "--name", "typed", cwd=tmp_path)
    assert_user_error(refused, str(plain), "--temporal", f"build-dataset --add-flow {plain}")
    assert not (tmp_path / "checkpoints" / "typed").exists()


def test_a_build_that_stores_flow_asks_for_the_room_it_takes(monkeypatch, tmp_path):
    from datasets import build as building
    from utils.errors import DatasetError
    from utils.size import Size

    frames_only = 100 * 16 * 16 * 3 * 2  # 100 frames of A and of B, and not a byte more
    monkeypatch.setattr(building.shutil, "disk_usage", lambda path: SimpleNamespace(total=frames_only, used=0, free=frames_only))
    building.check_room(tmp_path / "d", 100, Size(16, 16), mmap=True, flow=False)
    with pytest.raises(DatasetError, match="on disk"):
        building.check_room(tmp_path / "d", 100, Size(16, 16), mmap=True, flow=True)


def test_compare_and_evaluate_use_the_weight_average(tmp_path, with_flow):
    run = tmp_path / "checkpoints" / "ema"
    # One way of computing for training's validation and for evaluate: left to auto, each picks the faster way
    # by timing it, and a busy machine can make them pick differently (and differ in the last bits).
    same_way = ["--amp", "off", "--memory-format", "contiguous"]
    result = run_cli("train", "--data", with_flow, *TINY, "--max-steps", "6", "--ema", "0.9", "--temporal", "2", "--name", "ema",
                     *same_way, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["ema"] is not None and any(not torch.equal(state["ema"][k], state["generator"][k]) for k in state["ema"])
    assert any("loss/g_temporal" in r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))
    results = {}
    for weights in ("average", "trained"):
        evaluated = run_cli("evaluate", "--checkpoint", run, "--json", "--weights", weights, *same_way, cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr
        results[weights] = json.loads(evaluated.stdout)
    assert results["average"]["weights"] == "average (--ema)" and results["trained"]["weights"] == "trained"
    assert results["average"]["scores"]["l1"] != results["trained"]["scores"]["l1"]
    validated = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val/l1" in r][-1]
    assert validated["val/l1"] == pytest.approx(results["average"]["scores"]["l1"], rel=1e-6)  # validation ran the average too
