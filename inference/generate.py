"""A generator network run on uint8 clips, as compare, evaluate and validation run it: frames whose
sides the network cannot take are padded (edge pixels repeated) and cropped back; mixed precision
and memory layout as asked; no gradients.

    generate = ClipGenerator(generator, device, amp=False)
    fake = generate(clips)            # uint8 (B, T, H, W, 3) -> uint8 (B, T, H, W, 3)
"""
import numpy as np
import torch
import torch.nn.functional as F

from utils.device import autocast, to_model_input, to_uint8_frames


class ClipGenerator:
    def __init__(self, network, device, amp=False, channels_last=False):
        self.network, self.device, self.amp, self.channels_last = network, device, amp, channels_last

    @torch.no_grad()
    def __call__(self, clips):
        x = to_model_input(clips, self.device, self.channels_last)  # (N, C, T, H, W)
        h, w = x.shape[-2:]
        multiple = self.network.size_multiple
        if h % multiple or w % multiple:
            x = F.pad(x, (0, -w % multiple, 0, -h % multiple, 0, 0), mode="replicate")
        with autocast(self.device, self.amp):
            fake = self.network(x)[..., :h, :w]
        return to_uint8_frames(fake)


def generate_windows(generate, slider):
    """`generate` over the slider's windows in order: uint8 (inputs, outputs, targets), each (N, T, H, W, 3)."""
    inputs, outputs, targets = [], [], []
    for a, b in slider.batches(0):
        inputs.append(np.asarray(a))
        outputs.append(generate(a))
        targets.append(np.asarray(b))
    return np.concatenate(inputs), np.concatenate(outputs), np.concatenate(targets)
