"""The perceptual metrics: ColorVideoVDP's JOD, offline, equal to cvvdp's own figure; LPIPS, tLP, FVD
and KID loaded through their real loading code from weights planted in the cache layout (randomly
initialised: no download here), their distances checked against independent computations; and the
one-line refusals."""
import json

import cv2
import numpy as np
import pytest
import torch

from conftest import TINY, assert_user_error, make_video, read_frames, run_cli
from metrics import METRICS, requested_metrics
from metrics.jod import DISPLAY, JodStream, jod
from metrics import learned


@pytest.fixture(scope="module")
def photo_clip():
    """12 frames of 48x64 of a real photograph, panning: what JOD is calibrated for."""
    from skimage import data

    photo = cv2.resize(data.astronaut(), (128, 128))
    return np.stack([photo[20 + t: 68 + t, 10 + 2 * t: 74 + 2 * t] for t in range(12)])


def cvvdp_own(generated, target, fps=25):
    """cvvdp's own figure, through its own array source, for the display vgan uses."""
    import pycvvdp

    metric = pycvvdp.cvvdp(display_name=DISPLAY, quiet=True)
    q, _ = metric.predict(torch.from_numpy(generated), torch.from_numpy(target), dim_order="FHWC", frames_per_second=fps)
    return float(q)


def test_jod_is_10_for_the_same_clip_falls_with_blur_and_noise_and_equals_cvvdps_own(photo_clip):
    assert jod(photo_clip, photo_clip, 25) == pytest.approx(10.0, abs=1e-4)
    blurred = [np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in photo_clip]) for sigma in (0.7, 1.5, 3.0)]
    rng = np.random.default_rng(0)
    noisy = [np.clip(photo_clip + rng.normal(0, sigma, photo_clip.shape), 0, 255).astype(np.uint8) for sigma in (4, 12, 36)]
    for worse in (blurred, noisy):
        scores = [jod(video, photo_clip, 25) for video in worse]
        assert 10 > scores[0] > scores[1] > scores[2]  # the more blur or noise, the lower
    assert jod(blurred[1], photo_clip, 25) == pytest.approx(cvvdp_own(blurred[1], photo_clip), abs=1e-5)


def test_jod_fed_in_chunks_is_the_whole_videos_and_a_short_stream_gives_no_number(photo_clip):
    target = photo_clip
    made = np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in target])
    stream = JodStream(len(target), 25)
    for start in range(0, len(target), 5):
        stream.add(made[start:start + 5], target[start:start + 5])
    value, curve = stream.result()
    assert value == pytest.approx(cvvdp_own(made, target), abs=1e-5) and len(curve) == len(target)
    short = JodStream(len(target) + 3, 25)
    short.add(made, target)
    with pytest.raises(ValueError, match="gave 12 frames, not the 15"):
        short.result()


def test_compare_and_evaluate_report_jod_for_the_model_and_the_identity(tiny_run, tmp_path):
    work, experiment = tiny_run
    video = make_video(tmp_path / "v.mp4", size="64x48", seconds=1)
    out = tmp_path / "c.mp4"
    result = run_cli("compare", "--checkpoint", experiment, "--video", video, "-o", out, "--metrics", "jod", cwd=work)
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".json").read_text())
    scores = summary["scores"]
    # The identity is the gray input against the video (BT.601), as the gray pair derives it: cvvdp's own figure on it.
    target = read_frames(video, size=(16, 16))
    gray = np.repeat(np.rint(target @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1).astype(np.uint8)
    assert scores["jod_identity"] == pytest.approx(cvvdp_own(gray, target), abs=0.05)
    assert scores["jod"] < 10 and summary["jod_display"]["display"] == DISPLAY and len(summary["curves"]["jod"]) == 25
    assert "JOD (ColorVideoVDP)" in result.stdout
    evaluated = run_cli("evaluate", "--checkpoint", experiment, "--json", "--metrics", "jod", cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)["scores"]
    assert scores["jod"] < 10 and scores["jod_identity"] < 10 and scores["jod"] != scores["jod_identity"]


def test_validation_logs_jod_at_its_cadence(tmp_path, tiny):
    flags = [f for f in TINY if f not in ("--perceptual-every", "0")]
    result = run_cli("train", "--data", tiny, *flags, "--epochs", "3", "--perceptual-every", "2", "--name", "j", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "checkpoints" / "j" / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "val/l1" in r]
    assert [("val/jod" in r) for r in validated] == [True, False, True, True]  # step 0, epoch 1 (skipped), 2, 3 (the last)
    assert len({r["val/jod_identity"] for r in validated if "val/jod" in r}) == 1  # the identity's, scored once
    assert "JOD" in result.stdout
    listed = run_cli("runs", "--metric", "jod", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout)["runs"][0]["jod"] == validated[-1]["val/jod"]


def plant_weights(folder):
    """Randomly initialised backbones saved under the file names the loaders look for."""
    import torchvision
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True):  # keep the random initialisation
            return None

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    empty = folder / "empty.pth"
    torch.save({}, empty)
    networks = {"alexnet": torchvision.models.alexnet(weights=None), "s3d": torchvision.models.video.s3d(weights=None),
                "inception": Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))}
    for name, network in networks.items():
        torch.save(network.state_dict(), folder / learned.BACKBONES[name].file)
    empty.unlink()
    return folder


@pytest.fixture(scope="module")
def hub_weights(tmp_path_factory):
    """The torch hub cache's layout ($TORCH_HOME/hub/checkpoints) with the planted weights."""
    home = tmp_path_factory.mktemp("torch_home")
    plant_weights(home / "hub" / "checkpoints")
    return home


def test_lpips_loads_from_the_hub_cache_and_matches_an_independent_lpips(hub_weights, photo_clip, monkeypatch):
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(hub_weights))
    learned.lpips_network.cache_clear()
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in photo_clip])
    ours = learned.mean_lpips(blurred[None], photo_clip[None], 25)
    # richzhang's own package, with the same (planted) AlexNet weights in its backbone
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    alexnet = torch.load(hub_weights / "hub" / "checkpoints" / learned.BACKBONES["alexnet"].file, weights_only=True)
    features = {k.removeprefix("features."): v for k, v in alexnet.items() if k.startswith("features.")}
    for block in (reference.net.slice1, reference.net.slice2, reference.net.slice3, reference.net.slice4, reference.net.slice5):
        for index, layer in block.named_children():
            layer.load_state_dict({name: features[f"{index}.{name}"] for name in layer.state_dict()})
    as_input = lambda frames: torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        expected = reference(as_input(blurred), as_input(photo_clip)).mean().item()
    assert ours == pytest.approx(expected, rel=1e-4) and ours > 0
    assert learned.mean_lpips(photo_clip[None], photo_clip[None], 25) == pytest.approx(0.0, abs=1e-6)
    # tLP: zero for the video itself, and what its definition says for a video that flickers
    assert learned.mean_tlp(photo_clip[None], photo_clip[None], 25) == pytest.approx(0.0, abs=1e-6)
    flicker = photo_clip.copy()
    flicker[1::2] = blurred[1::2]
    network = learned.lpips_network(None, "cpu")
    made = learned.lpips_distances(network, flicker[1:], flicker[:-1], "cpu")
    real = learned.lpips_distances(network, photo_clip[1:], photo_clip[:-1], "cpu")
    expected = np.abs(made - real).mean()
    assert expected > 0 and learned.mean_tlp(flicker[None], photo_clip[None], 25) == pytest.approx(expected, rel=1e-6)


def test_kid_is_the_unbiased_mmd_of_its_features_and_fvd_the_frechet_distance(hub_weights, monkeypatch):
    from scipy import linalg

    weights = hub_weights / "hub" / "checkpoints"  # as --metric-weights DIR
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (2 * learned.FVD_CLIP, 32, 32, 3), dtype=np.uint8)
    made = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    kid = learned.KidStream(len(real), 25, weights=str(weights))
    kid.add(made[:5], real[:5])
    kid.add(made[5:6], real[5:6])
    x, y = (torch.cat(parts).double().numpy() for parts in (kid.made, kid.real))
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731 - the cubic polynomial kernel of Bińkowski et al.
    m = len(x)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    direct = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2
    assert kid.result()[0] == pytest.approx(direct, rel=1e-6, abs=1e-9)
    fvd = learned.FvdStream(len(real), 25, weights=str(weights))
    for start in range(0, len(real), 7):  # chunks that do not fall on clip boundaries
        fvd.add(made[start:start + 7], real[start:start + 7])
    f, r = (torch.cat(parts).double().numpy() for parts in (fvd.made, fvd.real))
    assert f.shape == (2, 1024)
    s1, s2 = np.cov(f, rowvar=False), np.cov(r, rowvar=False)
    frechet = ((f.mean(0) - r.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fvd.result()[0] == pytest.approx(frechet, rel=1e-3, abs=1e-6)


def test_missing_weights_are_one_line_naming_the_file_and_nothing_is_written(tiny_run, tmp_path):
    work, experiment = tiny_run
    empty = tmp_path / "weights"
    empty.mkdir()
    video = make_video(tmp_path / "v.mp4", size="64x48", seconds=1)
    out = tmp_path / "c.mp4"
    result = run_cli("compare", "--checkpoint", experiment, "--video", video, "-o", out, "--size", "32", "--metrics", "kid",
                     "--metric-weights", empty, cwd=work)
    assert_user_error(result, str(empty / learned.BACKBONES["inception"].file))
    assert "not found" in result.stderr and not out.exists() and not out.with_suffix(".json").exists()


def test_metrics_that_cannot_apply_are_refused_in_one_line(tiny_run, tmp_path):
    work, experiment = tiny_run
    video = make_video(tmp_path / "v.mp4", size="64x48", seconds=1)
    small = run_cli("compare", "--checkpoint", experiment, "--video", video, "-o", tmp_path / "c.mp4", "--metrics", "lpips", cwd=work)
    assert small.returncode == 2 and "lpips needs frames of at least 32 pixels a side, and these are 16x16" in small.stderr
    unknown = run_cli("evaluate", "--checkpoint", experiment, "--metrics", "jod,sharpness", cwd=work)
    assert unknown.returncode == 2 and "sharpness is not one of" in unknown.stderr
    assert set(requested_metrics()) == {"jod", "lpips", "tlp", "fvd", "kid"}
    assert all(METRICS[name].windows and METRICS[name].stream for name in requested_metrics())


def test_a_metric_without_a_target_to_score_against_is_refused_before_anything_is_written(tmp_path):
    from datasets.pairs import TWO_VIDEOS
    from inference.compare import Outputs, Windows, comparison_source, compare_video
    from utils.errors import VideoError
    from utils.size import Size

    video = make_video(tmp_path / "v.mp4", size="32x32", seconds=1)
    source = comparison_source(video, None, TWO_VIDEOS)  # a model trained on two videos, and no --target
    out = tmp_path / "c.mp4"
    with pytest.raises(VideoError, match="has no target to score jod against; give the aligned --target"):
        compare_video(source, lambda clips: clips, Size(32, 32), Windows(4, 2), Outputs(out, metrics=("jod",)))
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


def test_each_frames_jod_comes_from_one_batched_pooling_equal_to_pooling_each_frame():
    from metrics.jod import colorvideovdp, per_frame_jods

    metric = colorvideovdp("cpu")
    q = torch.rand(1, 4, 7, 5, generator=torch.Generator().manual_seed(0)) * 0.3  # (1, channels, frames, bands)
    one_by_one = [float(metric.do_pooling_and_jods(q[:, :, [f, f], :])) for f in range(7)]
    assert per_frame_jods(metric, q) == pytest.approx(one_by_one, abs=1e-5)


def test_a_jod_stream_on_a_gpu_is_held_to_its_budget(monkeypatch):
    # CUDA stood in for: an 80 GB card. cvvdp sizes its block of 1080p frames to the memory it may use:
    # without a cap nearly the whole card (about 100 frames, twice over in compare's two streams); capped, a share.
    from metrics.jod import JodStream, build_colorvideovdp

    import pycvvdp.cvvdp_metric as cvvdp_module

    monkeypatch.setattr(cvvdp_module, "has_nvml", False, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"total_memory": 80e9})())
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    pixels = 1920 * 1080
    free_for_all = build_colorvideovdp("cpu").estimate_block_N(pixels, 500)
    streams = [JodStream(2, 25, "cpu", memory=4e9) for _ in range(2)]
    for stream in streams:
        stream.add(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8))
        stream.result()
    capped = streams[0].metric.estimate_block_N(pixels, 500)
    assert streams[0].metric is not streams[1].metric and streams[0].metric.gpu_mem == pytest.approx(4.0)
    assert free_for_all >= 100 and 1 <= capped <= free_for_all / 20
    # What cvvdp would take at that block size stays within the cap (its own memory model: a + pix*(N + L - 1)*b + pix*N*c).
    metric = streams[0].metric
    assert 1.6e9 + pixels * (capped + metric.filter_len - 1) * 16 + pixels * capped * 320 <= 4e9


def test_validation_scores_every_window_in_one_call_as_each_alone(photo_clip):
    from metrics.jod import mean_jod

    target = np.stack([photo_clip[:5], photo_clip[5:10], photo_clip[2:7]])  # three windows of 5 frames
    made = np.stack([np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in window]) for sigma, window in zip((0.8, 1.2, 2.0), target)])
    alone = [jod(g, t, 25) for g, t in zip(made, target)]
    assert mean_jod(made, target, 25) == pytest.approx(np.mean(alone), abs=1e-5) and len(set(np.round(alone, 3))) == 3


def test_the_streams_take_frames_already_on_the_device_as_they_take_numpy_ones(photo_clip):
    # compare uploads each chunk once and hands the tensors to every stream: the same numbers.
    from metrics.frames import joined, uploaded

    made = np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in photo_clip])
    assert uploaded(made, "cpu") is made and uploaded(None, "cuda") is None  # nothing to move on a CPU
    streams = [JodStream(len(made), 25), JodStream(len(made), 25)]
    for start in range(0, len(made), 5):
        streams[0].add(made[start:start + 5], photo_clip[start:start + 5])
        streams[1].add(torch.from_numpy(made[start:start + 5]), torch.from_numpy(photo_clip[start:start + 5]))
    (numpy_jod, numpy_curve), (tensor_jod, tensor_curve) = (stream.result() for stream in streams)
    assert tensor_jod == pytest.approx(numpy_jod, abs=1e-6) and tensor_curve == pytest.approx(numpy_curve, abs=1e-6)
    assert torch.equal(joined(made[:2], torch.from_numpy(made[2:4])), torch.from_numpy(made[:4]))
    assert np.array_equal(joined(made[:2], made[2:4]), made[:4])
