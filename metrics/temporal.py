"""Temporal consistency of uint8 videos, measured as the video literature does, with OpenCV's DIS
optical flow (Kroeger et al. 2016; no network, no weights). The flow and occlusions are always the target's:
real motion is what the target does, so an output is steady where it follows it.

- Masked warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): frame t-1
  warped onto frame t by the target's backward flow, squared RGB distance (in [0, 1] units)
  averaged over the pixels the forward-backward check finds visible in both frames.
- tOF (Chu et al. 2020, TecoGAN): the mean distance, in pixels, between the output's own optical
  flow and the target's, frame pair by frame pair. TecoGAN estimates both with Farneback; here
  both are DIS, as for the rest (see DIS_PRESET).
- Flicker ratio: the output's masked warping error over the target's own, pooled over the pairs.
  1.0 is as steady as the real video; above 1 the output changes where the target does not.

    flow = pair_flow(targets[t], targets[t - 1])
    pair_warp_error(outputs[t], outputs[t - 1], flow)   # one pair's masked warping error
"""
import threading
from dataclasses import dataclass

import cv2
import numpy as np

# DIS at its medium preset, rather than Farneback at OpenCV's defaults: Farneback's 15-pixel
# windows smooth the flow across a moving object's edge, so the forward-backward check below finds
# almost none of what the object uncovers (tests/test_metrics.py), and DIS is 2 to 3 times faster.
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
DIS_MIN_SIDE = 12  # OpenCV's DIS refuses some frames with a side under this (any under 8, or both under 12)
_estimators = threading.local()  # an OpenCV DIS object per thread: compare scores on a thread of its own
# The forward-backward check of Sundaram et al. 2010, with the constants Ruder et al. 2016 and Lai
# et al. 2018 use: a pixel is occluded when going forward and coming back misses it by more than
# OCCLUSION_SHARE of the two flows' squared lengths plus OCCLUSION_PIXELS squared pixels.
OCCLUSION_SHARE, OCCLUSION_PIXELS = 0.01, 0.5


def gray(frame):
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def optical_flow(start, end):
    """DIS flow (H, W, 2) float32 from uint8 RGB `start` to `end`: for each pixel of `start`, how
    far it moved (x, y) to reach `end`."""
    if not hasattr(_estimators, "dis"):
        _estimators.dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    first, second = gray(start), gray(end)
    height, width = first.shape
    rows, columns = max(0, DIS_MIN_SIDE - height), max(0, DIS_MIN_SIDE - width)
    if rows or columns:  # DIS refuses such a frame: extend its edges, and keep the flow of the frame's own pixels
        first, second = (cv2.copyMakeBorder(frame, 0, rows, 0, columns, cv2.BORDER_REPLICATE) for frame in (first, second))
    return np.ascontiguousarray(_estimators.dis.calc(first, second, None)[:height, :width])


def warp(frame, flow):
    """`frame` resampled at each pixel plus `flow` (bilinear; pixels from outside take the nearest edge)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(frame, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def visible(backward, forward):
    """bool (H, W): the pixels of frame t that the forward-backward check finds in frame t-1 too,
    and whose flow to t-1 stays inside the frame (what came in across the border was not there).
    `backward` is frame t's flow to t-1, `forward` is frame t-1's flow to t."""
    there = warp(forward, backward)  # the forward flow where each pixel of t came from
    loop = backward + there
    squared = lambda f: np.sum(f * f, axis=-1)  # noqa: E731
    consistent = squared(loop) <= OCCLUSION_SHARE * (squared(backward) + squared(there)) + OCCLUSION_PIXELS
    h, w = backward.shape[:2]
    xs, ys = np.arange(w) + backward[..., 0], np.arange(h)[:, None] + backward[..., 1]
    return consistent & (xs > -0.5) & (xs < w - 0.5) & (ys > -0.5) & (ys < h - 0.5)  # within the pixels' extent


@dataclass(frozen=True)
class PairFlow:
    """The target's motion between frames t-1 and t: flows both ways and what is visible in both."""

    backward: np.ndarray  # (H, W, 2) float32: frame t -> t-1
    forward: np.ndarray  # (H, W, 2) float32: frame t-1 -> t
    mask: np.ndarray  # (H, W) bool: visible in both frames


def pair_flow(current, previous):
    """PairFlow of uint8 RGB frames `previous` -> `current`."""
    backward, forward = optical_flow(current, previous), optical_flow(previous, current)
    return PairFlow(backward, forward, visible(backward, forward))


def pair_warp_error(current, previous, flow):
    """Masked warping error of one pair: mean over visible pixels of the squared RGB distance
    between `current` and `previous` warped by `flow`, in [0, 1] units (so at most 3)."""
    diff = current.astype(np.float32) - warp(previous, flow.backward).astype(np.float32)
    per_pixel = np.sum(diff * diff, axis=-1) / 255.0 ** 2
    return float(per_pixel[flow.mask].mean()) if flow.mask.any() else 0.0


def pair_tof(current, previous, flow):
    """tOF of one pair: mean distance (pixels) between the flow previous -> current and the target's."""
    diff = optical_flow(previous, current) - flow.forward
    return float(np.mean(np.sqrt(np.sum(diff * diff, axis=-1))))


def ratio(numerator, denominator):
    """numerator / denominator, None where the reference is 0 (a still target gives no scale)."""
    return numerator / denominator if denominator > 0 else None


class SeamCount:
    """Warping errors split into the frame pairs where the sliding window switches and the pairs
    inside a window, for the output and the target. seam_ratio() is the output's error at switches
    over its error inside windows, each relative to the target's at the same pairs: 1.0 is a switch
    that cannot be told from any other frame pair."""

    def __init__(self):
        self.sums = {(kind, at): 0.0 for kind in ("output", "target") for at in ("switch", "inside")}

    def add(self, output_error, target_error, switch):
        at = "switch" if switch else "inside"
        self.sums["output", at] += output_error
        self.sums["target", at] += target_error

    def seam_ratio(self):
        switch = ratio(self.sums["output", "switch"], self.sums["target", "switch"])
        inside = ratio(self.sums["output", "inside"], self.sums["target", "inside"])
        return None if switch is None or not inside else switch / inside
