"""The derived pairs: how one video becomes input A and target B. Each kind knows how it makes A
(or, for future:K, B), whether A and B share a domain (the input is already a rough answer, so a
residual generator suits it), and how many frames it yields.

    pair = parse_pair("blur"); a = pair.derive(frames, rng)     # frames: uint8 (n, H, W, 3), the target
"""
from dataclasses import dataclass

import cv2
import numpy as np

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
CANNY_THRESHOLDS = (100, 200)
BLUR_SIGMA_PER_WIDTH = 1 / 32  # Gaussian sigma in pixels: width / 32, at least 1
LOWRES_FACTOR = 4
NOISE_SIGMA = 25.0  # out of 255
# meta.json's "pair" of a dataset that no derived pair made: two aligned videos, or two unpaired sides.
TWO_VIDEOS, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class Pair:
    """A derived pair kind; `value` is its parameter (future:K's K, compress:CRF's CRF) or 0."""

    kind: str
    value: int = 0

    @property
    def same_domain(self):
        """True where A is a degraded or shifted B: restoration and prediction, not translation."""
        return self.kind not in ("gray", "edges")

    @property
    def lost_frames(self):
        """Frames a video of n frames loses to the pair: future:K pairs t with t + K."""
        return self.value if self.kind == "future" else 0

    def derive(self, frames, rng):
        """The input A that this pair makes from target frames B (uint8 n x H x W x 3)."""
        return DERIVE[self.kind](frames, self, rng)

    def __str__(self):
        return f"{self.kind}:{self.value}" if self.kind in WITH_VALUE else self.kind


def to_gray(frames, pair, rng):
    luma = np.rint(frames @ np.array(GRAY_WEIGHTS, dtype=np.float32)).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def to_noisy(frames, pair, rng):
    noisy = frames + rng.normal(0.0, NOISE_SIGMA, size=frames.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def to_edges(frames, pair, rng):
    # OpenCV filters take one image at a time.
    edges = [cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), *CANNY_THRESHOLDS) for frame in frames]
    return np.repeat(np.stack(edges)[..., None], 3, axis=-1)


def blur_sigma(width):
    return max(1.0, width * BLUR_SIGMA_PER_WIDTH)


def to_blurred(frames, pair, rng):
    sigma = blur_sigma(frames.shape[2])
    return np.stack([cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma) for frame in frames])


def to_lowres(frames, pair, rng):
    h, w = frames.shape[1:3]
    small = (max(1, w // LOWRES_FACTOR), max(1, h // LOWRES_FACTOR))
    return np.stack([cv2.resize(cv2.resize(frame, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_CUBIC)
                     for frame in frames])


DERIVE = {"gray": to_gray, "edges": to_edges, "blur": to_blurred, "lowres": to_lowres, "noise": to_noisy}
WITH_VALUE = {"future": "K", "compress": "CRF"}  # kinds that take a number: future:K, compress:CRF
PAIR_NAMES = (*DERIVE, *(f"{kind}:{value}" for kind, value in WITH_VALUE.items()))
MAX_CRF = 51  # libx264's range is 0..51


def parse_pair(text):
    """'gray' -> Pair('gray'); 'future:3' -> Pair('future', 3); 'compress:40' -> Pair('compress', 40).
    Raises ValueError on anything else."""
    kind, _, value = str(text).partition(":")
    if kind == "future":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"future needs a positive frame offset, e.g. future:3 (got {text!r})")
        return Pair(kind, int(value))
    if kind == "compress":
        if not value.isdigit() or int(value) > MAX_CRF:
            raise ValueError(f"compress needs a libx264 CRF from 0 to {MAX_CRF}, e.g. compress:40 (got {text!r})")
        return Pair(kind, int(value))
    if kind not in DERIVE or value:
        raise ValueError(f"unknown pair {text!r}; choose one of {', '.join(PAIR_NAMES)}")
    return Pair(kind)
