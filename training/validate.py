"""The validation pass: the generator over every held-out window, scored against the target and
next to the identity baseline (the input itself taken as the answer). An unpaired run has no
target: each side's held-out windows are translated and brought back, and scored by the cycle's
reconstruction and by how steady the translation is under the input's motion.

With `perceptual`, the validated metrics that have code of their own (metrics/__init__.py: JOD)
are scored too; the identity's score is the same at every validation, so it is kept from the first.

    scores, clips = validate(generator, val_slider, device, amp=False)
    scores, clips = validate_unpaired(cycle_generators, val_a, val_b, device, amp=False)
"""
import weakref

import numpy as np

from inference.generate import ClipGenerator, generate_windows, round_trip_windows
from metrics import code_of, perceptual_validated
from metrics.scores import score_translation, score_windows

IDENTITY_SCORES = weakref.WeakKeyDictionary()  # validation windows -> {name: the identity's score}

DIRECTIONS = {"AtoB": "ab", "BtoA": "ba"}  # a direction and the suffix of its scores


def validate(generator, slider, device, amp, channels_last=False, perceptual=False, fps=25):
    """({"val/l1", "val/psnr", "val/ssim", "val/masked_warp_error", "val/tof", "val/flicker", each
    with _identity, and "val/masked_warp_error_target"; with `perceptual`, "val/jod" and its
    identity's}, (inputs, outputs, targets) uint8 windows)."""
    was_training = generator.training
    generator.eval()
    clips = generate_windows(ClipGenerator(generator, device, amp, channels_last), slider)
    generator.train(was_training)
    scores = score_windows(*clips)
    if perceptual:
        scores.update(perceptual_scores(slider, *clips, fps, device))
    # A ratio with no reference (a still target has no motion to compare flicker with) is left out, not logged as null.
    return {f"val/{name}": value for name, value in scores.items() if value is not None}, clips


def perceptual_scores(slider, inputs, outputs, targets, fps, device):
    """{name, name_identity} of the validated metrics with code of their own, each window a video."""
    kept = IDENTITY_SCORES.setdefault(slider, {})
    scores = {}
    for name in perceptual_validated():
        score = code_of(name, "windows")
        scores[name] = score(outputs, targets, fps, device)
        if name not in kept:
            kept[name] = score(inputs, targets, fps, device)
        scores[f"{name}_identity"] = kept[name]
    return scores


def validate_unpaired(generators, slider_a, slider_b, device, amp, channels_last=False, perceptual=False, fps=25):
    """({"val/cycle_psnr", "val/cycle_ssim", "val/flicker", ... each the mean of both directions, and
    each direction's as "val/cycle_psnr_ab" ...}, {direction: (inputs, translated, reconstructed)
    uint8 windows}) of CycleGenerators over A's and B's held-out windows."""
    was_training = generators.training
    generators.eval()
    scores, clips = {}, {}
    for (direction, suffix), slider in zip(DIRECTIONS.items(), (slider_a, slider_b)):
        forward, back = (ClipGenerator(network, device, amp, channels_last) for network in generators.direction(direction))
        clips[direction] = round_trip_windows(forward, back, slider)
        for name, value in score_translation(*clips[direction]).items():
            scores[f"val/{name}_{suffix}"] = value
    generators.train(was_training)
    for name in {key.rsplit("_", 1)[0] for key in scores}:
        both = [scores[f"{name}_{suffix}"] for suffix in DIRECTIONS.values()]
        if all(value is not None for value in both):
            scores[name] = float(np.mean(both))
    return {key: value for key, value in scores.items() if value is not None}, clips
