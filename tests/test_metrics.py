"""Quality metrics against their standard definitions (scikit-image) and on constructed motion."""
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from utils.metrics import VideoScores, mean_l1, mean_psnr, psnr, ssim, warping_errors


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


def moving_square(n=12, size=48, shift=2):
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    ys, xs = np.mgrid[:size, :size]
    for t in range(n):
        frames[t] = (((xs - shift * t) // 6 + ys // 6) % 2 * 200 + 30)[..., None]
    return frames


def test_warping_error_follows_the_target_motion_and_catches_flicker_and_freezing():
    target = moving_square()
    frozen = np.repeat(target[:1], len(target), axis=0)  # the first frame held: no motion where the target moves
    flicker = target.copy()
    flicker[1::2] = 255 - flicker[1::2]
    frozen_errors, flicker_errors, target_errors = warping_errors(target, frozen, flicker)
    moved = np.mean([mean_l1(target[t - 1], target[t]) for t in range(1, len(target))])  # with no motion compensation
    assert target_errors.mean() < 0.2 * moved  # the flow explains the target's own motion
    assert frozen_errors.mean() > 0.5 * moved and flicker_errors.mean() > 5 * target_errors.mean()


def test_video_scores_do_not_depend_on_how_the_stream_is_chunked():
    target = moving_square(n=10)
    output = np.clip(target.astype(int) + 10, 0, 255).astype(np.uint8)
    inputs = target[..., :1].repeat(3, -1) // 2
    whole = VideoScores()
    whole.add(inputs, output, target)
    chunked = VideoScores()
    for lo, hi in [(0, 3), (3, 4), (4, 10)]:
        chunked.add(inputs[lo:hi], output[lo:hi], target[lo:hi])
    assert whole.result() == pytest.approx(chunked.result())
    assert whole.counts["warp_error"] == 9 and whole.counts["psnr"] == 10
