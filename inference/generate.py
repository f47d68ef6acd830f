"""A generator network run on uint8 clips, as compare, evaluate and validation run it: frames whose
sides the network cannot take are padded (edge pixels repeated) and cropped back; mixed precision
and memory layout as asked, or the fastest measured here (utils/compute.py); no gradients.

    generate = ClipGenerator(generator, device, amp=False)
    generate = clip_generator(model, device, clip_shape=(4, 9, 64, 64))    # precision and layout measured
    fake = generate(clips)            # uint8 (B, T, H, W, 3) -> uint8 (B, T, H, W, 3)
"""
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from utils.compute import candidate_ways, choose, job_key
from utils.device import autocast, to_model_input, to_uint8_frames


class ClipGenerator:
    def __init__(self, network, device, amp=False, channels_last=False, note="as asked"):
        self.network, self.device, self.amp, self.channels_last, self.note = network, device, amp, channels_last, note
        if channels_last:
            network.to(memory_format=torch.channels_last_3d)

    @torch.inference_mode()
    def __call__(self, clips):
        x = to_model_input(clips, self.device, self.channels_last)  # (N, C, T, H, W)
        h, w = x.shape[-2:]
        multiple = self.network.size_multiple
        if h % multiple or w % multiple:
            x = F.pad(x, (0, -w % multiple, 0, -h % multiple, 0, 0), mode="replicate")
        with autocast(self.device, self.amp):
            fake = self.network(x)[..., :h, :w]
        return to_uint8_frames(fake)


def forward_timer(ways, network, clip_shape, device):
    """time_one(index): seconds of one forward pass of a copy of `network` computing as ways[index],
    on a random uint8 batch of `clip_shape` (B, T, H, W)."""
    clips = np.random.default_rng(0).integers(0, 256, (*clip_shape, 3), dtype=np.uint8)
    copies = {}

    def time_one(index):
        way = ways[index]
        if way.channels_last not in copies:
            copies[way.channels_last] = copy.deepcopy(network).to(memory_format=way.memory_format)
        generate = ClipGenerator(copies[way.channels_last], device, way.amp, way.channels_last)
        started = time.perf_counter()
        generate(clips)  # its result is on the host: the device has finished
        return time.perf_counter() - started

    return time_one


def clip_generator(model, device, clip_shape, amp="auto", memory_format="auto"):
    """A ClipGenerator for a TrainedModel, computing in the precision and layout asked, or for what
    is left to auto, the fastest here for clips of `clip_shape` (B, T, H, W)."""
    ways = candidate_ways(amp, memory_format, device)
    key = job_key(device, job="generate", network=model.state["network"], generator=model.state["model_args"],
                  clip=list(clip_shape), asked=[amp, memory_format])
    compute = choose(ways, key, forward_timer(ways, model.generator, clip_shape, device))
    return ClipGenerator(model.generator, device, compute.amp, compute.channels_last, compute.note)


def generate_windows(generate, slider):
    """`generate` over the slider's windows in order: uint8 (inputs, outputs, targets), each (N, T, H, W, 3)."""
    inputs, outputs, targets = [], [], []
    for a, b in slider.batches(0):
        inputs.append(np.asarray(a))
        outputs.append(generate(a))
        targets.append(np.asarray(b))
    return np.concatenate(inputs), np.concatenate(outputs), np.concatenate(targets)
