"""Frames larger than memory allows, run in spatial tiles. Each tile is a core plus a halo of
context on every side; the cores partition the frame and only they are kept, so where the halo is
at least the network's receptive radius (measured, not guessed) the convolutions see exactly what
they would see in the whole frame: no seam. Instance norm takes its statistics over the whole
frame, which no tile sees: passes over the tiles gather them layer by layer, as the untiled pass
would compute them, and the pass that keeps the output uses them. A tile that covers the whole frame is no
tiling at all (the output is exactly the untiled one). What a tile costs in memory is measured
with two small probe forward passes.

    tiling, cost = fit_tiling(network, clip_shape, budget, device)    # the largest tiles within `budget` bytes
    frames = run_tiled(generate, clips, tiling, norms)    # generate: uint8 (N, T, H, W, 3) clips -> the same
"""
import contextlib
import copy
import itertools
import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from networks.layers import InstanceNorm3d, SqueezeExcite3d, name_of, size_multiple
from utils.errors import UserError
from utils.memory import human_bytes
from utils.size import Size

PROBE_SIDES = (32, 64)  # probe tiles for the memory cost, rounded up to the network's size multiple
CPU_MARGIN = 1.25  # resident memory grew 1.16-1.2x the tensors counted (U-Net depth 3, 256-512 px, AMD EPYC)
OUTPUT_BYTES = 1  # a tiled batch is gathered in uint8


@dataclass(frozen=True)
class Tiling:
    tile: Size  # the largest tile, halo included
    halo: int  # context on each side of a tile's core
    tiles_per_pass: int = 1
    multiple: int = 1  # what the network pools by: cores are multiples of it

    @classmethod
    def aligned(cls, tile, halo, multiple, tiles_per_pass=1):
        """Tile sides and halo rounded up to multiples of what the network pools by, so that every
        window and core starts on the pooling grid of the whole frame."""
        return cls(Size(round_up(tile.width, multiple), round_up(tile.height, multiple)), round_up(halo, multiple), tiles_per_pass,
                   multiple)

    def covers(self, height, width):
        return self.tile.width >= width and self.tile.height >= height


def round_up(value, multiple):
    return -(-value // multiple) * multiple


def smallest_tile(halo, multiple):
    """The side of the smallest sensible tile: a core of one pooling step inside its halo."""
    return 2 * halo + multiple


def spans(length, tile, halo, multiple=1):
    """[(window start, window stop, core start, core stop)] along one side: cores of equal length (a
    multiple of `multiple`), as few as windows of at most `tile` pixels allow, partitioning [0,
    length); each window is its core and `halo` pixels on either side, cut at the frame's edges,
    where the whole frame ends too. With `halo` and `length` multiples of what the network pools
    by, windows and cores start on its pooling grid, as in the whole frame."""
    if tile >= length:
        return [(0, length, 0, length)]
    widest = tile - 2 * halo
    if widest <= 0:
        raise ValueError(f"tiles of {tile} pixels leave no core inside a halo of {halo} on each side")
    core = round_up(-(-length // -(-length // widest)), multiple)  # the length split evenly between as few cores as fit
    return [(max(0, start - halo), min(length, start + core + halo), start, min(start + core, length)) for start in range(0, length, core)]


def norm_layers(network):
    """The layers that take statistics over whole frames: instance norm and squeeze-excite gates."""
    return [m for m in network.modules() if isinstance(m, (InstanceNorm3d, SqueezeExcite3d))]


@dataclass(frozen=True)
class Tile:
    clip: int
    rows: tuple  # (window start, window stop, core start, core stop)
    columns: tuple

    @property
    def shape(self):
        """(height, width) of its window."""
        return self.rows[1] - self.rows[0], self.columns[1] - self.columns[0]

    def crop(self, clips):
        """This tile's window of uint8 clips (N, T, H, W, 3)."""
        (top, bottom, _, _), (left, right, _, _) = self.rows, self.columns
        return clips[self.clip:self.clip + 1, :, top:bottom, left:right]

    def core(self, y, axes=(-2, -1)):
        """The core of this tile's window in `y`, computed from the window at any scale; `axes`: its height and width."""
        (top, bottom, y0, y1), (left, right, x0, x1) = self.rows, self.columns
        h, w = y.shape[axes[0]], y.shape[axes[1]]
        box = [slice(None)] * y.ndim
        box[axes[0]] = slice((y0 - top) * h // (bottom - top), (y1 - top) * h // (bottom - top))
        box[axes[1]] = slice((x0 - left) * w // (right - left), (x1 - left) * w // (right - left))
        return y[tuple(box)]


def pass_input(part, clips):
    """(the uint8 windows of the tiles in `part`, the clip index of each) for one forward pass."""
    return np.concatenate([tile.crop(clips) for tile in part]), torch.tensor([tile.clip for tile in part])


def passes_over(clips, tiling):
    """The tiles of all clips, in groups of at most `tiling.tiles_per_pass` of one window shape."""
    n, _, height, width, _ = clips.shape
    tiles = [Tile(clip, rows, columns) for clip in range(n) for rows in spans(height, tiling.tile.height, tiling.halo, tiling.multiple)
             for columns in spans(width, tiling.tile.width, tiling.halo, tiling.multiple)]
    passes = []
    for tile in sorted(tiles, key=lambda tile: tile.shape):  # stable: in order within a shape
        if passes and len(passes[-1]) < tiling.tiles_per_pass and passes[-1][0].shape == tile.shape:
            passes[-1].append(tile)
        else:
            passes.append([tile])
    return passes


def core_sums(part, y):
    """[(clip, sum, sum of squares, count)] per tile of a pass over the cores of `y` (n, C, T, h, w),
    the input of a norm layer: the cores partition the frames, so their sums are the frame's."""
    sums = []
    for tile, value in zip(part, y):
        core = tile.core(value).float()  # (C, T, h, w)
        sums.append((tile.clip, core.sum(dim=(1, 2, 3)), core.square().sum(dim=(1, 2, 3)), core[0].numel()))
    return sums


@contextlib.contextmanager
def sharing(norms, statistics, clips=None):
    """Norm layers normalising with given (mean, var) per clip, of the clips `clips` (default: all)."""
    for norm in norms:
        mean, var = statistics[norm]
        norm.shared = (mean, var) if clips is None else (mean[clips], var[clips])
    try:
        yield
    finally:
        for norm in norms:
            norm.shared = None


class Reached(Exception):
    """A statistics pass got what it came for: the input of the next norm layer."""


def frame_statistics(forward, passes, norms, clips):
    """{norm layer: (mean, var) per clip and channel, (N, C, 1, 1, 1)} over whole frames, as the
    untiled forward pass would compute them. One pass over the tiles per norm layer, in the order
    the network runs them, each with the layers before it normalised with their frame statistics
    and stopped at the layer it measures (inference/layered.py computes each layer once instead,
    for a network torch.fx can trace)."""
    known = {}
    while len(known) < len(norms):
        sums, measured, part = [], [], None

        def measure(norm, inputs):
            if norm in known:
                return
            sums.extend(core_sums(part, inputs[0]))
            measured.append(norm)
            raise Reached

        hooks = [norm.register_forward_pre_hook(measure) for norm in norms]
        try:
            for part in passes:
                windows, index = pass_input(part, clips)
                with sharing(list(known), known, index), contextlib.suppress(Reached):
                    forward(windows)
        finally:
            for hook in hooks:
                hook.remove()
        known[measured[0]] = combined(sums, len(clips))
    return known


def combined(sums, clips):
    """(mean, var) per clip and channel from per-tile (clip, sum, sum of squares, count)."""
    index = torch.tensor([clip for clip, _, _, _ in sums])
    total = torch.zeros(clips).index_add_(0, index, torch.tensor([float(c) for _, _, _, c in sums]))[:, None]
    mean = torch.zeros((clips, len(sums[0][1]))).index_add_(0, index, torch.stack([s for _, s, _, _ in sums]).cpu()) / total
    square = torch.zeros_like(mean).index_add_(0, index, torch.stack([q for _, _, q, _ in sums]).cpu()) / total
    device = sums[0][1].device
    return mean[..., None, None, None].to(device), (square - mean * mean).clamp_min(0)[..., None, None, None].to(device)


def run_tiled(forward, clips, tiling, norms):
    """forward(clips) for uint8 clips (N, T, H, W, 3) -> uint8 (N, T, H, W, 3), computed
    `tiling.tiles_per_pass` tiles (of any clips) at a time, normalised with the frame's statistics.
    Frames stay uint8 outside a pass. Exactly forward(clips) when a tile covers the frame."""
    n, _, height, width, _ = clips.shape
    if tiling.covers(height, width):
        return np.concatenate([forward(clips[i:i + tiling.tiles_per_pass]) for i in range(0, n, tiling.tiles_per_pass)])
    passes = passes_over(clips, tiling)
    statistics = frame_statistics(forward, passes, norms, clips) if norms else {}
    out = np.empty_like(clips)
    for part in passes:
        windows, index = pass_input(part, clips)
        with sharing(norms, statistics, index):
            keep_cores(out, forward(windows), part)
    return out


def keep_cores(out, results, part):
    """Each tile's core of a pass's uint8 results (n, T, h, w, 3) into its place in `out`."""
    for result, tile in zip(results, part):
        (_, _, y0, y1), (_, _, x0, x1) = tile.rows, tile.columns
        out[tile.clip, :, y0:y1, x0:x1] = tile.core(result, axes=(1, 2))


MAX_PROBE_SIDE = 1024  # an output pixel that still sees the border of frames this large sees the whole frame (or so
# much of it, 511 pixels each way, that tiles would be mostly halo)
MAX_PROBE_FRAMES = 257  # likewise for the frames of a clip


class NotTileable(UserError):
    """A network whose output pixels see the whole frame (attention over it, a norm vgan cannot share
    between tiles): tiles would not give what whole frames give."""


# Reach is measured on the CPU, in float32, wherever the network runs: a path that is there has a
# gradient that is exactly nonzero only where no TF32 or FFT kernel leaves rounding noise in the rest.
PROBE_DEVICE = torch.device("cpu")


def gradient_probe(network):
    """A copy of `network` on the CPU for measuring reach: every weight positive (so no ReLU hides
    a path, whatever the trained weights), and forward(x) -> output with its whole-frame statistics
    held fixed (they would otherwise reach everywhere)."""
    probe = copy.deepcopy(network).float().to(PROBE_DEVICE)
    for module in probe.modules():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, InstanceNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    norms = norm_layers(probe)

    def forward(x):
        statistics = {norm: (torch.zeros(1, norm_channels(norm), 1, 1, 1), torch.ones(1, norm_channels(norm), 1, 1, 1)) for norm in norms}
        with sharing(norms, statistics):
            return probe(x)

    return forward


def reach(forward, frames, side):
    """(frames, pixels): how far the input that one output voxel, in the middle of a clip of
    `frames` frames of side x side pixels, depends on reaches from it, in time and in space."""
    x = torch.rand(1, 3, frames, side, side, device=PROBE_DEVICE, requires_grad=True)
    with torch.enable_grad():
        forward(x)[..., frames // 2, side // 2, side // 2].sum().backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0  # (T, H, W)
    in_time = support.any(dim=2).any(dim=1).nonzero()
    in_space = support.any(dim=0).nonzero()
    return int((in_time - frames // 2).abs().max()), int((in_space - side // 2).abs().max())


@torch.inference_mode(False)  # gradients, also when asked from inside an inference pass (a fallback to tiles)
def receptive_radius(network, frames=1):
    """How far, in pixels, an output pixel sees into its input: measured on ever larger frames
    until the reach stops short of their border (and, for a network with dilated kernels, whose
    reach has gaps that the border can hide, until it stays the same on frames twice as large);
    None when it still reaches the border of MAX_PROBE_SIDE frames (the pixel sees the whole frame)."""
    forward = gradient_probe(network)
    gaps = any(getattr(m, "dilation", (1,))[-1] > 1 for m in network.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)))
    sides = itertools.takewhile(lambda side: side <= MAX_PROBE_SIDE, (8 * size_multiple(network) * 2 ** k for k in range(32)))
    measures = ((side // 2 - 1, reach(forward, frames, side)[1]) for side in sides)  # (limit, radius), lazily
    if gaps:
        return _settled(measures)
    return next((radius for limit, radius in measures if radius < limit), None)


@torch.inference_mode(False)
def temporal_radius(network):
    """How far, in frames, an output frame sees into its input clip, measured as the receptive
    radius is, on ever longer clips until it stays the same on one twice as long (None: the whole
    clip, up to MAX_PROBE_FRAMES)."""
    forward = gradient_probe(network)
    side = 2 * size_multiple(network)
    lengths = itertools.takewhile(lambda n: n <= MAX_PROBE_FRAMES, (8 * 2 ** k + 1 for k in range(32)))
    return _settled((n // 2, reach(forward, n, side)[0]) for n in lengths)


def _settled(measures):
    """The first radius that is inside its probe's limit and the same on the next, larger probe; None if none is."""
    previous = None
    for limit, radius in measures:
        if previous is not None and radius == previous < limit:
            return radius
        previous = radius if radius < limit else None
    return None


def tiling_halo(network):
    """The context a tile needs on each side: the receptive radius. A network that sees the whole
    frame cannot run in tiles; that is one line that says why."""
    radius = receptive_radius(network)
    if radius is None:
        raise NotTileable("--tile", f"{name_of(network)} cannot run in tiles: an output pixel depends on the whole frame (it "
                                    f"still reaches the border of {MAX_PROBE_SIDE}x{MAX_PROBE_SIDE} frames), so tiles would "
                                    f"not give what whole frames give; raise --max-memory, or lower --batch or --size")
    return radius


def norm_channels(layer):
    return layer.weight.numel() if isinstance(layer, InstanceNorm3d) else layer.gate[1].in_channels


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors that the operators run inside it create and that are still
    alive, and the peak of that count: what a forward pass holds at its fullest, exactly as the
    network allocates it, with none of the noise of resident memory."""

    def __init__(self):
        super().__init__()
        self.holders, self.sizes, self.now, self.peak = {}, {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key not in self.holders:
                    self.holders[key], self.sizes[key] = 0, storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                self.holders[key] += 1  # views share a storage: it is freed with the last of them
                weakref.finalize(tensor, self.release, key)
        return out

    def release(self, key):
        self.holders[key] -= 1
        if not self.holders[key]:
            del self.holders[key]
            self.now -= self.sizes.pop(key)


def peak_bytes(network, x, device):
    """Memory the float32 forward pass of `x` takes at its peak, above what was in use before it
    (an upper bound for bfloat16, which is measured later): on CUDA as the allocator counts it, after
    a first pass of the same shape (in which cuDNN's benchmark mode tries its kernels, each with a
    workspace of its own: none of that is what the pass then takes); on a CPU the tensors it
    creates, counted as they come and go, times a margin for what the kernels use besides (oneDNN's
    buffers, the allocator's slack)."""
    if device.type == "cuda":
        with torch.inference_mode():
            network(x)  # the warm-up: cuDNN's search for this shape, and the caching allocator's first blocks
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            network(x)
        return torch.cuda.max_memory_allocated(device) - before
    counter = LiveTensorBytes()
    with torch.inference_mode(), counter:
        network(x)
    return int(CPU_MARGIN * counter.peak)


class ProbeError(UserError):
    """The two probe passes gave costs that do not grow with the frame: no plan can be made from them."""


def forward_cost(network, frames, device):
    """(fixed bytes, bytes per pixel) of the forward pass of one window of `frames` frames: a line
    through the peaks of two probe passes, at PROBE_SIDES rounded up to the network's multiple.
    Costs that do not grow with the frame are refused (and so never kept in the compute cache)."""
    sides = [round_up(side, size_multiple(network)) for side in PROBE_SIDES]
    costs = [peak_bytes(network, torch.zeros(1, 3, frames, side, side, device=device), device) for side in sides]
    if not costs[1] > costs[0] > 0:
        raise ProbeError("--max-memory", f"the memory probe of {name_of(network)} measured {human_bytes(costs[0])} at "
                                         f"{sides[0]}x{sides[0]} and {human_bytes(costs[1])} at {sides[1]}x{sides[1]} pixels, which "
                                         f"says nothing of larger frames; give the tile size yourself with --tile")
    per_pixel = (costs[1] - costs[0]) / (sides[1] ** 2 - sides[0] ** 2)
    return max(0.0, costs[0] - per_pixel * sides[0] ** 2), per_pixel


def fit_tiling(network, clip_shape, budget, device, halo=None, cost=None):
    """(Tiling, the bytes it is expected to take) for windows of `clip_shape` (B, T, H, W) within
    `budget` bytes: whole frames, as many clips per pass as fit; where one clip's frames do not
    fit, the largest square tiles that do, with a halo of the network's receptive radius (or
    `halo`). Refuses in one line, with the sizes, when even the smallest sensible tile does not.
    `cost`: the network's forward_cost for these frames when known; probed otherwise."""
    batch, frames, height, width = clip_shape
    multiple = size_multiple(network)
    fixed, per_pixel = cost or forward_cost(network, frames, device)
    clips = min(batch, int((budget - fixed) // (per_pixel * height * width)))
    if clips >= 1:
        return Tiling(Size(width, height), 0, tiles_per_pass=clips), fixed + per_pixel * height * width * clips
    halo = round_up(tiling_halo(network) if halo is None else halo, multiple)
    # The tiles' output is gathered in uint8 on the host: it takes of this budget on a CPU, not of a GPU's.
    gathered = OUTPUT_BYTES * 3 * frames * batch * height * width if device.type == "cpu" else 0
    side = int(math.sqrt(max(0.0, budget - fixed - gathered) / per_pixel)) // multiple * multiple
    smallest = smallest_tile(halo, multiple)
    if side < smallest:
        need = fixed + gathered + per_pixel * smallest ** 2
        raise UserError("--max-memory", f"even tiles of {smallest}x{smallest} pixels ({halo} of them context on each side) need "
                                        f"about {human_bytes(need)} for {batch} windows of {frames} frames of {width}x{height}, "
                                        f"over the budget of {human_bytes(budget)}; raise --max-memory, or lower --batch or --size")
    tile = Size(min(side, width), min(side, height))
    return Tiling(tile, halo, multiple=multiple), fixed + gathered + per_pixel * tile.width * tile.height
