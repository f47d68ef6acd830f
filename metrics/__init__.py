"""The metrics: one registry of every score vgan reports, and their code beside it (scores.py:
PSNR, SSIM, L1 and the running video scores; temporal.py: warping error, tOF, flicker and seam;
jod.py: ColorVideoVDP; learned.py: LPIPS, tLP, FVD and KID, which need a network's weights).
Compare, evaluate, validation, `runs --metric`, the pages and the benches all ask this registry
what a metric is called, which way is better and what it needs; it imports nothing heavy, so
that the command line and `runs` read it without torch. Adding a metric is its entry here plus
its code.

    METRICS["jod"].better            # "higher"
    best_of("flicker", [1.3, 0.4])   # 1.3: a ratio is judged by how near it is to its target, 1
"""
import math
from dataclasses import dataclass

HIGHER, LOWER, TOWARD = "higher", "lower", "toward"
RATIO_FLOOR = 1e-6  # a ratio of 0 (a model whose frames never change) is judged as far from its target as a millionth


@dataclass(frozen=True)
class Metric:
    label: str  # its row in the score tables
    better: str  # HIGHER, LOWER, or TOWARD its `target` (a ratio: judged by |log(value / target)|)
    needs: tuple = ("target",)  # "target": a known answer; "target flow": the target's motion; "weights": a network's
    applies: tuple = ("paired",)  # the kinds of model it scores: "paired" (a target), "unpaired" (a round trip)
    validated: bool = True  # training's validation logs it as val/NAME (so `runs --metric` and a search can use it)
    on_request: bool = False  # computed only when asked for (--metrics), for its cost or its weights
    min_side: int = 1  # the smallest frame side it can score, in pixels
    cost: str = "a few ms per 64x64 frame on one core"
    reference: str = ""  # the paper it comes from, as the glossary cites it (a test keeps them the same)
    # A metric asked for by name (--metrics) names its code, "module:function", as the network registry does:
    # `windows(generated, target, fps, device, weights)` scores uint8 windows (N, T, H, W, 3), each a video of its
    # own, and `stream(frames, fps, device, weights, memory)` a video fed in chunks (add(generated, target), result()),
    # within `memory` bytes where it can be held to a budget (None: no cap).
    windows: str = ""
    stream: str = ""
    target: float | None = None  # with TOWARD: the value that is best (1 for a ratio to the real video's own)
    display: str = ""  # "module:attr" of the viewing conditions its score assumes, recorded beside it as NAME_display
    axis: str = ""  # "distortion" or "perception": the two axes of the perception-distortion view (Blau and Michaeli 2018)
    short: str = ""  # its word in the text tables' headings and the progress lines
    shown: tuple = ()  # where it is shown unasked: "tables" (runs and the benches' columns), "progress" (validation's line)
    digits: int = 2  # decimals shown
    unit: str = ""  # after the number in a progress line


METRICS = {
    "l1": Metric("L1 (255 = 1)", LOWER, short="L1", shown=("progress",), digits=4),
    "psnr": Metric("PSNR (dB)", HIGHER, axis="distortion", short="PSNR", shown=("tables", "progress"), unit=" dB"),  # the peak signal-to-noise ratio of each frame, averaged
    "jod": Metric("JOD (ColorVideoVDP)", HIGHER, on_request=True, min_side=8, cost="about 17 ms per 64x64 frame, 130 ms per 256x256, one core",
                  reference="Mantiuk et al. 2024", windows="metrics.jod:mean_jod", stream="metrics.jod:JodStream",
                  display="metrics.jod:DISPLAY_RECORD", axis="perception", short="JOD", shown=("tables", "progress")),
    "ssim": Metric("SSIM", HIGHER, reference="Wang et al. 2004", short="SSIM", shown=("tables",), digits=3),
    "lpips": Metric("LPIPS (AlexNet)", LOWER, needs=("target", "weights"), validated=False, on_request=True, min_side=32,
                    cost="AlexNet on every frame", reference="Zhang et al. 2018",
                    windows="metrics.learned:mean_lpips", stream="metrics.learned:LpipsStream"),
    "tlp": Metric("tLP (LPIPS in time)", LOWER, needs=("target", "weights"), validated=False, on_request=True, min_side=32,
                  cost="AlexNet on every frame pair, twice", reference="Chu et al. 2020 (TecoGAN)",
                  windows="metrics.learned:mean_tlp", stream="metrics.learned:TlpStream"),
    "fvd": Metric("FVD (S3D features)", LOWER, needs=("target", "weights"), validated=False, on_request=True,
                  cost="clips of 16 frames resized to 224x224 through an S3D; at least 2 clips",
                  reference="Unterthiner et al. 2018; features of torchvision's Kinetics-400 S3D, not the original I3D",
                  windows="metrics.learned:window_fvd", stream="metrics.learned:FvdStream"),
    "kid": Metric("KID (Inception, per frame)", LOWER, needs=("target", "weights"), validated=False, on_request=True,
                  cost="every frame resized to 299x299 through Inception v3; at least 2 frames", reference="Bińkowski et al. 2018",
                  windows="metrics.learned:window_kid", stream="metrics.learned:KidStream"),
    "cycle_psnr": Metric("cycle PSNR (dB)", HIGHER, needs=(), applies=("unpaired",)),
    "cycle_ssim": Metric("cycle SSIM", HIGHER, needs=(), applies=("unpaired",)),
    "masked_warp_error": Metric("masked warping error", LOWER, needs=("target flow",), applies=("paired", "unpaired"),
                                min_side=12, cost="about 2 ms per 64x64 frame pair (DIS optical flow)",
                                reference="Lai et al. 2018", short="warp", shown=("tables",), digits=4),
    "tof": Metric("tOF (pixels)", LOWER, needs=("target flow",), applies=("paired", "unpaired"), min_side=12,
                  reference="Chu et al. 2020 (TecoGAN)", short="tOF", shown=("tables",)),
    # As steady as the real video is best: a blurry model that flickers less than the footage scores well under 1.
    "flicker": Metric("flicker ratio", TOWARD, needs=("target flow",), applies=("paired", "unpaired"), min_side=12, target=1.0,
                       short="flicker", shown=("tables",), digits=3),
    "seam": Metric("seam ratio", LOWER, needs=("target flow",), validated=False, min_side=12, short="seam", shown=("tables",)),
    "vmaf": Metric("VMAF", HIGHER, validated=False, on_request=True, cost="ffmpeg's libvmaf, where the binary has it",
                   reference="Li et al. 2016"),
}


def code_of(name, role):
    """The function or class that computes metric `name` in `role` ("windows" or "stream"), imported now."""
    from utils.registry import load

    return load(getattr(METRICS[name], role))


def displays(names):
    """{NAME_display: the viewing conditions} of the metrics `names` that assume some, to record beside their scores."""
    return {f"{name}_display": code_of(name, "display") for name in names if METRICS[name].display}


def perception_distortion():
    """(the distortion metric, the perception metric) the perception-distortion view plots against each other."""
    by_axis = {metric.axis: name for name, metric in METRICS.items() if metric.axis}
    return by_axis["distortion"], by_axis["perception"]


def better_is_higher(name):
    """Whether a higher `judged` value of metric `name` is better (a TOWARD metric is judged by its distance: lower)."""
    return METRICS[name].better == HIGHER


def judged(name, value):
    """What metric `name` is ranked, tested and searched on: its value, or for a metric judged
    toward a target, the distance |log(value / target)| (a ratio of 0.5 is as far from 1 as 2)."""
    metric = METRICS[name]
    if metric.better != TOWARD or value is None:
        return value
    return abs(math.log(max(value, RATIO_FLOOR) / metric.target))


def judged_label(name):
    """The label of what `judged` gives for metric `name`."""
    metric = METRICS[name]
    return metric.label if metric.better != TOWARD else f"{metric.label}: |log| distance from {metric.target:g}"


def best_of(name, values):
    """The best of `values` of metric `name`, by its direction."""
    return (max if better_is_higher(name) else min)(values, key=lambda value: judged(name, value))


def validated_metrics():
    """The names training's validation logs (as val/NAME), in registry order."""
    return [name for name, metric in METRICS.items() if metric.validated]


def perceptual_validated():
    """The validated metrics with code of their own (JOD): validation scores them every --perceptual-every validations."""
    return [name for name in validated_metrics() if METRICS[name].windows]


def unpaired_metrics():
    """The validated metrics that score a model trained unpaired (no target)."""
    return [name for name in validated_metrics() if "unpaired" in METRICS[name].applies]


def requested_metrics():
    """{name: Metric} of those compare and evaluate add only when asked (--metrics); VMAF has a flag of its own."""
    return {name: metric for name, metric in METRICS.items() if metric.on_request and name != "vmaf"}


def too_small(names, width, height):
    """Why frames of width x height cannot be scored by the metrics `names`, or None."""
    small = [(name, METRICS[name].min_side) for name in names if min(width, height) < METRICS[name].min_side]
    if not small:
        return None
    name, side = small[0]
    return f"{name} needs frames of at least {side} pixels a side, and these are {width}x{height}"


def shown_in(place, names=None):
    """[(name, Metric)] of the scores shown unasked in `place` ("tables" or "progress"), among `names`
    (all when None), in the registry's order."""
    return [(name, metric) for name, metric in METRICS.items() if place in metric.shown and (names is None or name in names)]


def score_labels():
    """(name, label) of every metric, in the order the score tables show them."""
    return [(name, metric.label) for name, metric in METRICS.items()]
