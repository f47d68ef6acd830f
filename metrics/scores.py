"""Quality metrics on uint8 frames, following their standard definitions; the temporal ones are
metrics/temporal.py's.

    psnr(generated, target)            # per frame, dB; frames are (..., H, W, 3) uint8
"""
import itertools

import cv2
import numpy as np

from metrics import code_of, score_labels
from metrics.temporal import SeamCount, pair_flow, pair_tof, pair_warp_error, ratio

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


class VideoScores:
    """Running scores of a stream of frames next to the identity baseline (the input itself taken as
    the answer): means of PSNR and SSIM per frame, and of the masked warping error and tOF per frame
    pair (metrics/temporal.py), with the flicker ratio; when the stream says where a sliding window
    switches, the seam ratio, and `curve`, the warping error of each pair. Memory does not grow
    with the stream beyond a few numbers per frame pair.
        scores = VideoScores(); scores.add(inputs, outputs, targets); scores.result()
    """

    def __init__(self):
        self.sums = {}
        self.counts = {}
        self.previous = None  # (input, output, target) of the last frame seen, for the pair across chunks
        self.seams = SeamCount()
        self.switches = 0
        self.frames = 0
        self.curve = []  # (frame, output's warping error, target's, whether the window switched there) per pair

    def _add(self, name, values):
        values = np.minimum(np.asarray(values, dtype=np.float64), PSNR_CAP_DB)
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())
        self.counts[name] = self.counts.get(name, 0) + values.size

    def add(self, inputs, outputs, targets, switched=False):
        """uint8 (n, H, W, 3) chunks of the same frames, in time order; `switched`: the pair from the
        last frame seen to this chunk's first joins two windows."""
        self._add("psnr", psnr(outputs, targets))
        self._add("psnr_identity", psnr(inputs, targets))
        self._add("ssim", ssim(outputs, targets))
        self._add("ssim_identity", ssim(inputs, targets))
        first = self.frames - (self.previous is not None)  # the frame number of the first frame below
        self.frames += len(targets)
        if self.previous is not None:  # lists of frames: the pair across the chunk boundary, without copying the chunk
            inputs, outputs, targets = ([p, *c] for p, c in zip(self.previous, (inputs, outputs, targets)))
        for t in range(1, len(targets)):
            flow = pair_flow(targets[t], targets[t - 1])  # the target's motion, once for every video scored on it
            errors = [pair_warp_error(video[t], video[t - 1], flow) for video in (outputs, inputs, targets)]
            for name, value in zip(("masked_warp_error", "masked_warp_error_identity", "masked_warp_error_target"), errors):
                self._add(name, [value])
            self._add("tof", [pair_tof(outputs[t], outputs[t - 1], flow)])
            self._add("tof_identity", [pair_tof(inputs[t], inputs[t - 1], flow)])
            switch = switched and t == 1 and self.previous is not None
            self.switches += switch
            self.seams.add(errors[0], errors[2], switch)
            self.curve.append((first + t, errors[0], errors[2], switch))
        self.previous = (inputs[-1], outputs[-1], targets[-1])

    def cut(self):
        """A break in time (the next frames do not follow the last ones): no frame pair across it."""
        self.previous = None

    def result(self):
        """{"psnr", "ssim", "masked_warp_error", "tof", each with _identity, "masked_warp_error_target",
        "flicker" and "flicker_identity"; "seam" when windows switched}."""
        scores = {name: self.sums[name] / self.counts[name] for name in self.sums}
        if "masked_warp_error" in self.sums:
            target = self.sums["masked_warp_error_target"]
            scores["flicker"] = ratio(self.sums["masked_warp_error"], target)
            scores["flicker_identity"] = ratio(self.sums["masked_warp_error_identity"], target)
        if self.switches:
            scores["seam"] = self.seams.seam_ratio()
        return scores


def score_windows(inputs, outputs, targets):
    """PSNR, SSIM, masked warping error, tOF, flicker ratio and L1 of uint8 windows (N, T, H, W, 3),
    each next to the identity baseline; frame pairs stay within each window."""
    scores = VideoScores()
    for window in zip(inputs, outputs, targets):
        scores.add(*window)
        scores.cut()  # windows are scored on their own: no frame pair from one to the next
    return {**scores.result(), "l1": mean_l1(outputs, targets), "l1_identity": mean_l1(inputs, targets)}


def score_translation(inputs, outputs, reconstructed):
    """Scores of an unpaired translation of uint8 windows (N, T, H, W, 3), which has no target: the
    cycle reconstruction's PSNR and SSIM against the input, and the translation's masked warping
    error and tOF under the input's motion, next to the input's own warping error, with their
    ratio (the flicker ratio against the input); frame pairs stay within each window."""
    steadiness = VideoScores()
    for window_in, window_out in zip(inputs, outputs):
        steadiness.add(window_in, window_out, window_in)
        steadiness.cut()
    temporal = steadiness.result()
    flat = lambda clips: clips.reshape((-1,) + clips.shape[2:])  # noqa: E731
    return {"cycle_psnr": mean_psnr(reconstructed, inputs), "cycle_ssim": float(np.mean(ssim(flat(reconstructed), flat(inputs)))),
            "masked_warp_error": temporal["masked_warp_error"], "masked_warp_error_input": temporal["masked_warp_error_target"],
            "tof": temporal["tof"], "flicker": temporal["flicker"]}


def requested_scores(names, inputs, outputs, targets, fps, device="cpu", weights=None):
    """{name, name_identity} of the metrics asked for by name (--metrics) on uint8 windows (N, T, H,
    W, 3), each window a video of its own: the generated windows' and the input's (the identity's)."""
    scores = {}
    for name in names:
        score = code_of(name, "windows")
        scores[name], scores[f"{name}_identity"] = (score(made, targets, fps, device, weights) for made in (outputs, inputs))
    return scores


SCORE_ROWS = score_labels()  # (name, label), in the registry's order


def score_rows(scores):
    """(label, generated, identity, reference) per metric in `scores` (a dict with _identity and
    _target keys; an unpaired translation's reference is the input's own, _input), in SCORE_ROWS
    order; a score that is missing is None. The text table and the pages both show these rows."""
    return [(label, *(scores.get(key) for key in (name, f"{name}_identity")), scores.get(f"{name}_target", scores.get(f"{name}_input")))
            for name, label in SCORE_ROWS if name in scores]


def score_table(scores):
    """A plain-text table: a row per metric, columns generated / identity (input as the answer) / target."""
    reference = "input" if "masked_warp_error_input" in scores else "target"
    lines = [f"{'':<22}{'generated':>11}{'identity':>11}{reference:>9}"]
    for label, *cells in score_rows(scores):
        lines.append(f"{label:<22}" + "".join(f"{c:>{w}.4f}" if c is not None else " " * w for c, w in zip(cells, (11, 11, 9))))
    return "\n".join(lines)
