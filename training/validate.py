"""The validation pass: the generator over every held-out window, scored against the target and
next to the identity baseline (the input itself taken as the answer).

    scores, clips = validate(generator, val_slider, device, amp=False)
"""
import numpy as np
import torch

from datasets.slider import to_model_input
from utils.device import autocast
from utils.metrics import mean_l1, mean_psnr


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


def validate(generator, slider, device, amp, channels_last=False):
    """({"val/l1", "val/psnr", "val/l1_identity", "val/psnr_identity"}, (inputs, outputs, targets))."""
    inputs, outputs, targets = generate_windows(generator, slider, device, amp, channels_last)
    scores = {
        "val/l1": mean_l1(outputs, targets),
        "val/psnr": mean_psnr(outputs, targets),
        "val/l1_identity": mean_l1(inputs, targets),
        "val/psnr_identity": mean_psnr(inputs, targets),
    }
    return scores, (inputs, outputs, targets)
