"""Quality metrics against their standard definitions (scikit-image), and the temporal ones against
the motion a test made: a pan, noise that changes per frame, an object that uncovers background."""
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import cv2

from metrics.scores import VideoScores, mean_psnr, psnr, ssim
from metrics.temporal import pair_flow, pair_warp_error, warp


def noisy_pair(shape, seed, spread=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-spread, spread, shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("shape", [(64, 64, 3), (33, 47, 3), (16, 16, 3), (120, 90, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_and_ssim_match_scikit_image(shape, seed):
    a, b = noisy_pair(shape, seed)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-3)
    expected = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-3)


def test_ssim_is_one_for_identical_frames_and_lower_for_worse_ones():
    a, slightly = noisy_pair((48, 48, 3), 3, spread=5)
    _, badly = noisy_pair((48, 48, 3), 3, spread=80)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 1.0 > ssim(a, slightly) > ssim(a, badly)


def test_psnr_per_frame_and_capped_mean():
    a, b = noisy_pair((4, 16, 16, 3), 4)
    values = psnr(a, b)
    assert values.shape == (4,) and np.isinf(psnr(a, a)).all()
    assert mean_psnr(a, a) == 100.0


def texture(height, width, seed, cell=4):
    """A smooth random RGB picture: blocks of `cell` pixels, interpolated and blurred."""
    blocks = np.random.default_rng(seed).integers(0, 256, (height // cell, width // cell, 3)).astype(np.uint8)
    return cv2.GaussianBlur(cv2.resize(blocks, (width, height), interpolation=cv2.INTER_LINEAR), (5, 5), 1.5)


def pan(n=6, side=64, speed=2, seed=0):
    """A picture moving `speed` pixels right per frame."""
    wide = texture(side, side + speed * n, seed)
    return np.stack([wide[:, speed * (n - t): speed * (n - t) + side] for t in range(n)])


def noisy(frames, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(frames + rng.normal(0, sigma, frames.shape)), 0, 255).astype(np.uint8)


def by_known_motion(video, speed):
    """The warping error computed from the motion the test made, not from any flow: frame t-1 shifted
    `speed` pixels right against frame t, squared RGB distance in [0, 1] units, over the columns both show."""
    diffs = video[1:, :, speed:].astype(float) - video[:-1, :, :-speed].astype(float)
    return float(np.mean(np.sum(diffs * diffs, axis=-1))) / 255 ** 2


def test_on_a_pan_the_masked_warping_error_is_the_one_the_known_motion_gives():
    target = pan()
    flows = [pair_flow(target[t], target[t - 1]) for t in range(1, len(target))]
    assert all(f.mask.mean() > 0.95 * 62 / 64 for f in flows)  # a pan hides nothing but the 2 columns that come in
    own = np.mean([pair_warp_error(target[t], target[t - 1], f) for t, f in enumerate(flows, 1)])
    unaligned = np.mean([np.sum((target[t].astype(float) - target[t - 1]) ** 2, axis=-1).mean() / 255 ** 2 for t in range(1, len(target))])
    assert own < 0.03 * unaligned  # the flow explains the target's own motion
    output = noisy(target, 8, seed=1)  # a restoration that leaves noise changing from frame to frame
    measured = np.mean([pair_warp_error(output[t], output[t - 1], f) for t, f in enumerate(flows, 1)])
    assert measured == pytest.approx(by_known_motion(output, 2), rel=0.1)


@pytest.mark.parametrize("sigma", [3, 8])
def test_per_frame_noise_raises_the_error_by_twice_its_variance_per_channel(sigma):
    still = np.repeat(texture(48, 48, 2)[None] // 2 + 64, 6, axis=0)  # kept off 0 and 255: no clipping
    output = noisy(still, sigma, seed=3)
    scores = VideoScores()
    scores.add(still, output, still)
    rounding = 1 / 12  # the variance np.rint adds
    assert scores.result()["masked_warp_error"] == pytest.approx(3 * 2 * (sigma ** 2 + rounding) / 255 ** 2, rel=0.05)
    assert scores.result()["masked_warp_error_target"] == 0 and scores.result()["flicker"] is None  # no scale in a still target


def test_the_occlusion_mask_removes_what_a_moving_object_uncovers():
    side, speed = 96, 8
    background, thing = texture(side, side, 2), texture(32, 32, 5, cell=8)
    frames = np.repeat(background[None], 2, axis=0)
    for t, frame in enumerate(frames):
        frame[30:62, 10 + speed * t: 42 + speed * t] = thing
    flow = pair_flow(frames[1], frames[0])
    uncovered = np.zeros((side, side), bool)
    uncovered[30:62, 10:10 + speed] = True  # where the object was, now background seen for the first time
    assert (~flow.mask[uncovered]).mean() > 0.5
    assert flow.mask[:20].mean() > 0.95 and flow.mask.mean() > 0.9  # the rest stays in
    unmasked = np.sum((frames[1].astype(float) - warp(frames[0], flow.backward)) ** 2, axis=-1).mean() / 255 ** 2
    assert pair_warp_error(frames[1], frames[0], flow) < 0.7 * unmasked


def test_tof_is_the_distance_between_the_outputs_motion_and_the_targets():
    target = pan(speed=3)
    frozen = np.repeat(target[:1], len(target), axis=0)  # the first frame held: the output does not move
    scores = VideoScores()
    scores.add(frozen, target, target)  # as input, the frozen video is the identity baseline
    result = scores.result()
    assert result["tof"] < 0.1 and result["tof_identity"] == pytest.approx(3, abs=0.3)
    assert result["flicker"] == pytest.approx(1, abs=0.01) and result["flicker_identity"] > 10


def test_video_scores_do_not_depend_on_how_the_stream_is_chunked():
    target = pan(n=10)
    output = np.clip(target.astype(int) + 10, 0, 255).astype(np.uint8)
    inputs = target[..., :1].repeat(3, -1) // 2
    whole = VideoScores()
    whole.add(inputs, output, target)
    chunked = VideoScores()
    for lo, hi in [(0, 3), (3, 4), (4, 10)]:
        chunked.add(inputs[lo:hi], output[lo:hi], target[lo:hi])
    assert whole.result() == pytest.approx(chunked.result())
    assert whole.counts["masked_warp_error"] == 9 and whole.counts["psnr"] == 10


def test_the_seam_ratio_compares_window_switches_with_the_pairs_inside_windows():
    target = pan(n=13)
    jumpy = target.copy()
    for start in range(4, 13, 4):  # windows of 4 frames, each a little brighter than the last: a step at each switch
        jumpy[start:] = np.clip(jumpy[start:].astype(int) + 6, 0, 255)
    steady, seamed = VideoScores(), VideoScores()
    for start in range(0, 13, 4):
        part = slice(start, start + 4)
        steady.add(target[part], target[part], target[part], switched=start > 0)
        seamed.add(target[part], jumpy[part], target[part], switched=start > 0)
    assert steady.switches == seamed.switches == 3
    assert steady.result()["seam"] == pytest.approx(1, abs=1e-6)
    assert seamed.result()["seam"] > 5
    assert [frame for frame, *_, switch in seamed.curve if switch] == [4, 8, 12]
