"""The validation pass: the generator over every held-out window, scored against the target and
next to the identity baseline (the input itself taken as the answer).

    scores, clips = validate(generator, val_slider, device, amp=False)
"""
import numpy as np
import torch

from datasets.slider import to_model_input
from utils.device import autocast
from utils.metrics import VideoScores, mean_l1


def to_uint8_frames(clips):
    """float (N, C, T, H, W) in [-1, 1] -> uint8 (N, T, H, W, C) numpy, rounded like an 8-bit video."""
    return ((clips.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


@torch.no_grad()
def generate_windows(generator, slider, device, amp, channels_last=False):
    """Run the generator over the slider's windows in order: uint8 (inputs, outputs, targets), each (N, T, H, W, 3)."""
    was_training = generator.training
    generator.eval()
    inputs, outputs, targets = [], [], []
    for a, b in slider.batches(0):
        with autocast(device, amp):
            fake = generator(to_model_input(a, device, channels_last))
        inputs.append(np.asarray(a))
        outputs.append(to_uint8_frames(fake))
        targets.append(np.asarray(b))
    generator.train(was_training)
    return np.concatenate(inputs), np.concatenate(outputs), np.concatenate(targets)


def score_windows(inputs, outputs, targets):
    """PSNR, SSIM, temporal warping error and L1 of uint8 windows (N, T, H, W, 3), each next to the
    identity baseline; the warping error stays within each window."""
    scores = VideoScores()
    for window in zip(inputs, outputs, targets):
        scores.add(*window)
        scores.cut()  # windows are scored on their own: no warping error from one to the next
    return {**scores.result(), "l1": mean_l1(outputs, targets), "l1_identity": mean_l1(inputs, targets)}


def validate(generator, slider, device, amp, channels_last=False):
    """({"val/l1", "val/psnr", "val/ssim", "val/warp_error", each with _identity, and
    "val/warp_error_target"}, (inputs, outputs, targets))."""
    clips = generate_windows(generator, slider, device, amp, channels_last)
    return {f"val/{name}": value for name, value in score_windows(*clips).items()}, clips
