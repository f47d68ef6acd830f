"""A generator network run on uint8 clips, as compare, evaluate and validation run it: frames whose
sides the network cannot take are padded (edge pixels repeated) and cropped back; frames too large
for the memory budget run in spatial tiles (inference/tiles.py); mixed precision and memory layout
as asked, or the fastest measured here (compute/); no gradients.

    generate = ClipGenerator(generator, device, amp=False)
    generate = clip_generator(model, device, clip_shape=(4, 9, 720, 1280))   # tiles, precision and layout chosen
    fake = generate(clips)            # uint8 (B, T, H, W, 3) -> uint8 (B, T, H, W, 3)
"""
import copy
import functools

import numpy as np
import torch

from compute.cache import job_key, remembered
from compute.choice import candidate_ways, choose, way_timer
from compute.precision import autocast
from networks.layers import size_multiple
from inference.layered import LayerPlan, run_by_layer
from inference.tiles import Tiling, fit_tiling, forward_cost, norm_layers, run_tiled, tiling_halo, smallest_tile, spans
from utils.device import to_model_input, to_uint8_frames
from utils.errors import UsageError, UserError, warn
from utils.memory import available_memory, human_bytes

TIMED_SIDE = {"cpu": 128}  # the precision and layout are chosen on windows cropped to this (on a GPU: as they run)
HOST_COPIES = 2  # on a GPU, the windows stay in RAM beside it: the decoded input and the generated output, in uint8
BUDGET_SHARE = 0.5  # of the memory free now, for the generator's forward pass (decoding, scoring and encoding need the rest)
SCRATCH_SHARE = 0.25  # of the RAM free now, for the values tiles keep between layers when no --max-memory was given


class ClipGenerator:
    """`smaller_plan()`, when given, is asked for (tiling, plan in words) of about half the memory
    whenever the GPU runs out of memory; without it such an error stands."""

    def __init__(self, network, device, amp=False, channels_last=False, note="as asked", tiling=None, plan="whole frames",
                 smaller_plan=None, scratch_memory=0):
        self.network, self.device, self.amp, self.channels_last, self.note = network, device, amp, channels_last, note
        self.tiling = tiling  # None: whole frames
        self.plan = plan  # how it runs, in words, for the user
        self.smaller_plan = smaller_plan
        self.scratch_memory = scratch_memory  # RAM the tiles' values may wait in between layers (inference/layered.py)
        if channels_last:
            network.to(memory_format=torch.channels_last_3d)

    def forward(self, x):
        with autocast(self.device, self.amp):
            return self.network(x)

    def generate(self, clips):
        """uint8 clips whose sides the network takes -> uint8 generated frames."""
        return to_uint8_frames(self.forward(to_model_input(clips, self.device, self.channels_last)))

    @torch.inference_mode()
    def __call__(self, clips):
        h, w = clips.shape[2:4]
        multiple = size_multiple(self.network)
        if h % multiple or w % multiple:  # edge pixels repeated, cropped back after
            clips = np.pad(clips, ((0, 0), (0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="edge")
        while True:
            try:
                frames = self.run(clips)
                break
            except torch.cuda.OutOfMemoryError:
                if self.smaller_plan is None:
                    raise
                torch.cuda.empty_cache()
                self.tiling, self.plan = self.smaller_plan()  # a UserError once even the smallest tiles do not fit
                warn("--max-memory", f"the GPU ran out of memory; running {self.plan} from here")
        return np.ascontiguousarray(frames[:, :, :h, :w])

    def run(self, clips):
        if self.tiling is None:
            return self.generate(clips)
        if self.tiling.covers(*clips.shape[2:4]) or self.layer_plan is None:  # whole frames a few clips at a time; or,
            return run_tiled(self.generate, clips, self.tiling, norm_layers(self.network))  # untraceable, a pass per norm layer
        with autocast(self.device, self.amp):
            return run_by_layer(self.layer_plan, lambda windows: to_model_input(windows, self.device, self.channels_last),
                                to_uint8_frames, clips, self.tiling, self.scratch_memory)

    @functools.cached_property
    def layer_plan(self):
        """The network cut at its norm layers, for tiles computed layer by layer (inference/layered.py); None when it cannot be traced."""
        return LayerPlan.of(self.network)


def forward_pass_in(network, clip_shape, device):
    """prepare(way) for the way timer: one forward pass of a copy of `network` computing in `way`,
    on a random uint8 batch of `clip_shape` (B, T, H, W): with tiles, what one pass takes."""
    clips = np.random.default_rng(0).integers(0, 256, (*clip_shape, 3), dtype=np.uint8)
    copies = {}

    def prepare(way):
        if way.channels_last not in copies:
            copies[way.channels_last] = copy.deepcopy(network).to(memory_format=way.memory_format)
        generate = ClipGenerator(copies[way.channels_last], device, way.amp, way.channels_last)
        return lambda: generate(clips)

    return prepare


def clip_generator(model, device, clip_shape, amp="auto", memory_format="auto", max_memory=None, tile=None, overlap=None):
    """A ClipGenerator for a TrainedModel, for windows of `clip_shape` (B, T, H, W): in tiles of
    `tile` (a Size) whose windows overlap by `overlap` pixels (default: twice the network's
    receptive radius), or when not given the largest whose forward pass fits in `max_memory` bytes
    (default: a safe share of the memory free now); computing in the precision and layout asked,
    or for what is left to auto, the fastest here."""
    batch, frames, height, width = clip_shape
    halo = None if overlap is None else overlap // 2
    if tile is not None:
        multiple = size_multiple(model.generator)
        radius = tiling_halo(model.generator) if halo is None else halo
        tiling = Tiling.aligned(tile, radius, multiple, tiles_per_pass=batch)  # a tile covering the frame: untiled, bit for bit
        if not tiling.covers(height, width) and min(tiling.tile) < smallest_tile(tiling.halo, multiple):
            raise UsageError(f"argument --tile: {tile} leaves no room inside {2 * tiling.halo} pixels of tile overlap "
                             f"(the network sees {tiling.halo} pixels around each pixel); use larger tiles or a smaller --tile-overlap")
        budget = None
    else:
        budget = max_memory or default_budget(device)
        # The probe passes take a second or more (most of a short compare): once per machine and network.
        key = job_key(device, job="forward cost", frames=frames, **model.identity)
        cost = remembered(key, lambda: forward_cost(model.generator, frames, device))
        tiling, expected = fit_tiling(model.generator, clip_shape, budget, device, halo=halo, cost=cost)
    if device.type == "cuda":
        check_host_memory(clip_shape)
    # Timed on one pass's windows; on a CPU cropped to at most TIMED_SIDE's side: timing HD frames four ways there would take minutes.
    side = TIMED_SIDE.get(device.type)
    one_pass = (min(batch, tiling.tiles_per_pass), frames, min(tiling.tile.height, height, side or height), min(tiling.tile.width, width, side or width))
    ways = candidate_ways(amp, memory_format, device)
    key = job_key(device, job="generate", **model.identity,
                  clip=list(one_pass), asked=[amp, memory_format])
    compute = choose(ways, key, way_timer(ways, forward_pass_in(model.generator, one_pass, device), device))
    untiled = tiling.covers(height, width) and tiling.tiles_per_pass >= batch
    words = f"{plan(tiling, clip_shape, budget)}; {compute.describe(device)}"
    smaller = HalvedPlans(model.generator, clip_shape, expected, device, halo, cost) if device.type == "cuda" and budget else None
    # Tiles' values wait between layers in RAM no budget keeps free (--max-memory: none; on disk instead).
    scratch = 0 if max_memory else SCRATCH_SHARE * available_memory()
    return ClipGenerator(model.generator, device, compute.amp, compute.channels_last, compute.note, None if untiled else tiling,
                         words, smaller, scratch)


class HalvedPlans:
    """After the GPU ran out of memory: the tiling of half the memory the last plan expected to
    take, and it in words. The probe's prediction can miss what a GPU's kernels take besides
    (cuDNN's workspaces): the windows then go on in smaller passes rather than fail."""

    def __init__(self, network, clip_shape, expected, device, halo, cost):
        self.network, self.clip_shape, self.budget, self.device, self.halo, self.cost = network, clip_shape, expected, device, halo, cost

    def __call__(self):
        self.budget /= 2
        halved, _ = fit_tiling(self.network, self.clip_shape, self.budget, self.device, halo=self.halo, cost=self.cost)
        return halved, plan(halved, self.clip_shape, self.budget)


def plan(tiling, clip_shape, budget):
    """How the windows are run, in words."""
    batch, frames, height, width = clip_shape
    within = f" within {human_bytes(budget)}" if budget else ""
    if tiling.covers(height, width):
        windows = min(batch, tiling.tiles_per_pass)
        return f"whole {width}x{height} frames, {windows} window{'s' if windows > 1 else ''} of {frames} at a time{within}"
    across, down = (len(spans(side, tile, tiling.halo, tiling.multiple)) for side, tile in ((width, tiling.tile.width), (height, tiling.tile.height)))
    return (f"{width}x{height} frames in {across * down} tiles of {tiling.tile.width}x{tiling.tile.height} "
            f"({tiling.halo} pixels of context on each side){within}")


def check_host_memory(clip_shape):
    """On a GPU the budget is the GPU's, but the windows still pass through RAM: one line when they do not fit there."""
    need = HOST_COPIES * 3 * int(np.prod(clip_shape))
    if need > available_memory():
        batch, frames, height, width = clip_shape
        raise UserError("--batch", f"{batch} windows of {frames} frames of {width}x{height} need {human_bytes(need)} of RAM "
                                   f"beside the GPU, over the {human_bytes(available_memory())} free; lower --batch")


def default_budget(device):
    """Bytes a forward pass may take: half the memory free now (RAM, or the GPU's, counting as free
    what torch's allocator holds cached but unused, as after training in the same process)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return BUDGET_SHARE * (free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return BUDGET_SHARE * available_memory()


def metric_budget(device, max_memory=None):
    """Bytes the perceptual scores may take together on a GPU beside the generator: what it may take
    (--max-memory, else half of what is free); None on a CPU, where cvvdp sizes nothing to memory."""
    if device.type != "cuda":
        return None
    return max_memory or default_budget(device)


def round_trip_windows(forward, back, slider, progress=None):
    """An unpaired model's translation of the slider's windows and the way back, in order: uint8
    (inputs, translated, brought back), each (N, T, H, W, 3)."""
    inputs, outputs, recovered = [], [], []
    for clips, _ in slider.batches(0):
        inputs.append(np.asarray(clips))
        outputs.append(forward(clips))
        recovered.append(back(outputs[-1]))
        if progress is not None:
            progress.advance(clips.shape[0] * clips.shape[1])
    return np.concatenate(inputs), np.concatenate(outputs), np.concatenate(recovered)


def generate_windows(generate, slider, progress=None):
    """`generate` over the slider's windows in order: uint8 (inputs, outputs, targets), each (N, T, H, W, 3)."""
    inputs, outputs, targets = [], [], []
    for a, b in slider.batches(0):
        inputs.append(np.asarray(a))
        outputs.append(generate(a))
        targets.append(np.asarray(b))
        if progress is not None:
            progress.advance(a.shape[0] * a.shape[1])
    return np.concatenate(inputs), np.concatenate(outputs), np.concatenate(targets)
