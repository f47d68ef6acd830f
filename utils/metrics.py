"""Image quality metrics on uint8 frames, following their standard definitions.

    psnr(generated, target)            # per frame, dB; frames are (..., H, W, 3) uint8
"""
import itertools

import cv2
import numpy as np

PSNR_CAP_DB = 100.0  # identical frames have infinite PSNR; averages cap each frame here


def psnr(generated, target):
    """Peak signal-to-noise ratio per frame, 10 log10(255^2 / MSE), over all pixels and channels.
    The squared errors of uint8 frames are summed exactly, in integers."""
    diff = np.subtract(generated, target, dtype=np.int32)
    flat = diff.reshape(diff.shape[:-3] + (-1,))
    mse = np.einsum("...i,...i->...", flat, flat, dtype=np.int64) / flat.shape[-1]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)


def mean_psnr(generated, target):
    """Mean PSNR over frames, each capped at PSNR_CAP_DB."""
    return float(np.mean(np.minimum(psnr(generated, target), PSNR_CAP_DB)))


def mean_l1(generated, target):
    """Mean absolute error in [0, 1] units (255 = 1)."""
    return float(np.mean(np.abs(generated.astype(np.float32) - target.astype(np.float32))) / 255.0)


SSIM_SIGMA = 1.5
SSIM_WINDOW = 11  # 2 * int(3.5 * sigma + 0.5) + 1: the Gaussian truncated at 3.5 sigma, as in Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_mean(image):
    return cv2.GaussianBlur(image, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim(generated, target):
    """Structural similarity per frame (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5),
    K1 = 0.01, K2 = 0.03, L = 255, computed per RGB channel and averaged; the SSIM map's border
    (5 pixels, where the window leaves the frame) is left out, as scikit-image does."""
    generated, target = np.asarray(generated), np.asarray(target)
    if generated.ndim == 3:
        return ssim(generated[None], target[None])[0]
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    pad = (SSIM_WINDOW - 1) // 2
    scores = np.zeros(len(generated))
    for i, channel in itertools.product(range(len(generated)), range(3)):  # a channel of a frame at a time: 4K stays small
        x, y = generated[i, ..., channel].astype(np.float64), target[i, ..., channel].astype(np.float64)
        mx, my = _gaussian_mean(x), _gaussian_mean(y)
        vx, vy, cxy = _gaussian_mean(x * x) - mx * mx, _gaussian_mean(y * y) - my * my, _gaussian_mean(x * y) - mx * my
        index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores[i] += index[pad:-pad or None, pad:-pad or None].mean() / 3
    return scores


def backward_flow(current, previous):
    """Farneback optical flow from `current` to `previous` (uint8 RGB frames): for each pixel of
    `current`, where it was in `previous`. OpenCV's documented default parameters."""
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (current, previous)]
    return cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)


def warp(frame, flow):
    """`frame` resampled along `flow` (bilinear; pixels from outside the frame take the nearest edge)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(frame, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_errors(targets, *videos):
    """Temporal warping error per frame pair of each video in `videos`, and of `targets` itself: the
    previous frame warped by the target video's optical flow, against the current frame; mean
    absolute difference, 255 = 1. Lower is steadier; the target's own number is the reference for
    real motion. Returns one array per video in `videos`, then the target's."""
    errors = [[] for _ in range(len(videos) + 1)]
    for t in range(1, len(targets)):
        flow = backward_flow(targets[t], targets[t - 1])  # computed once, used for every video
        for errs, video in zip(errors, (*videos, targets)):
            errs.append(mean_l1(warp(video[t - 1], flow), video[t]))
    return [np.array(e) for e in errors]


class VideoScores:
    """Running means of PSNR, SSIM and temporal warping error over a stream of frames, next to the
    identity baseline (the input itself taken as the answer). Memory does not grow with the stream.
        scores = VideoScores(); scores.add(inputs, outputs, targets); scores.result()
    """

    def __init__(self):
        self.sums = {}
        self.counts = {}
        self.previous = None  # (input, output, target) of the last frame seen, for the warping error

    def _add(self, name, values):
        values = np.minimum(np.asarray(values, dtype=np.float64), PSNR_CAP_DB)
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())
        self.counts[name] = self.counts.get(name, 0) + values.size

    def add(self, inputs, outputs, targets):
        """uint8 (n, H, W, 3) chunks of the same frames, in time order."""
        self._add("psnr", psnr(outputs, targets))
        self._add("psnr_identity", psnr(inputs, targets))
        self._add("ssim", ssim(outputs, targets))
        self._add("ssim_identity", ssim(inputs, targets))
        if self.previous is not None:  # lists of frames: the pair across the chunk boundary, without copying the chunk
            inputs, outputs, targets = ([p, *c] for p, c in zip(self.previous, (inputs, outputs, targets)))
        if len(targets) > 1:
            out_errors, identity_errors, target_errors = warping_errors(targets, outputs, inputs)
            self._add("warp_error", out_errors)
            self._add("warp_error_identity", identity_errors)
            self._add("warp_error_target", target_errors)
        self.previous = (inputs[-1], outputs[-1], targets[-1])

    def cut(self):
        """A break in time (the next frames do not follow the last ones): no warping error across it."""
        self.previous = None

    def result(self):
        """{"psnr", "ssim", "warp_error", and the same with _identity, and warp_error_target}."""
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


def score_windows(inputs, outputs, targets):
    """PSNR, SSIM, temporal warping error and L1 of uint8 windows (N, T, H, W, 3), each next to the
    identity baseline; the warping error stays within each window."""
    scores = VideoScores()
    for window in zip(inputs, outputs, targets):
        scores.add(*window)
        scores.cut()  # windows are scored on their own: no warping error from one to the next
    return {**scores.result(), "l1": mean_l1(outputs, targets), "l1_identity": mean_l1(inputs, targets)}


SCORE_ROWS = (("l1", "L1 (255 = 1)"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("warp_error", "warping error"), ("vmaf", "VMAF"))


def score_rows(scores):
    """(label, generated, identity, target) per metric in `scores` (a dict with _identity and
    _target keys), in SCORE_ROWS order; a score that is missing is None. The text table and the
    pages both show these rows."""
    return [(label, *(scores.get(key) for key in (name, f"{name}_identity", f"{name}_target")))
            for name, label in SCORE_ROWS if name in scores]


def score_table(scores):
    """A plain-text table: a row per metric, columns generated / identity (input as the answer) / target."""
    lines = [f"{'':<16}{'generated':>11}{'identity':>11}{'target':>9}"]
    for label, *cells in score_rows(scores):
        lines.append(f"{label:<16}" + "".join(f"{c:>{w}.4f}" if c is not None else " " * w for c, w in zip(cells, (11, 11, 9))))
    return "\n".join(lines)
