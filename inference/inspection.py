"""What a generator is, before a GPU-hour is spent on it: its size, its cost, how far it sees in
time and space (measured from its gradients, as tiling measures its halo), and the checks every
generator must pass to work everywhere in vgan. `inspect-network` prints these; the test suite
runs the same checks over the registry and an example plug-in.

    facts, problems = inspect_generator(generator, frames=9, size=Size(64, 64), device=torch.device("cpu"))
    timings = time_generator(generator, clip, device)   # {"fp32 contiguous": (forward s, forward and backward s), ...}
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from compute.choice import Compute, measure_ways, way_timer
from compute.precision import amp_pays_here, autocast
from inference.generate import ClipGenerator
from inference.tiles import NotTileable, Tiling, forward_cost, receptive_radius, round_up, temporal_radius, tiling_halo
from networks.layers import Residual, SizeError, check_size, clip_mismatch, count_parameters, size_multiple
from metrics.scores import PSNR_CAP_DB, mean_psnr
from utils.size import Size

TILE_AGREEMENT_DB = 45.0  # tiles that agree with whole frames to this PSNR show no seam (uint8 rounding is ~58 dB)
TIMED_ROUNDS = 3
WAYS = (Compute(False, False), Compute(False, True), Compute(True, False), Compute(True, True))


@dataclass(frozen=True)
class Fact:
    name: str
    value: str


def flops(generator, clip):
    """(GFLOP of a forward pass, GFLOP of its backward pass) of one clip, as torch's FLOP counter
    counts the convolutions and matrix products (the elementwise rest is not counted)."""
    net = copy.deepcopy(generator).float()
    x = clip.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as forward:
        out = net(x)
    with FlopCounterMode(display=False) as backward:
        out.float().sum().backward()
    return forward.get_total_flops() / 1e9, backward.get_total_flops() / 1e9


def residual_starts_at_identity(generator, clip):
    """The largest difference between a --residual copy's untrained output and its input (0: it starts at the identity)."""
    wrapped = Residual(copy.deepcopy(generator))
    with torch.no_grad():
        return float((wrapped(clip) - clip).abs().max())


def tiles_agreement(generator, frames, halo, device):
    """PSNR (dB) of the generator run in 2 x 2 tiles against whole frames, with the halo of its
    receptive radius and the whole-frame statistics shared between tiles as inference shares them."""
    multiple = size_multiple(generator)
    halo = round_up(halo, multiple)
    core = max(2 * halo, 4 * multiple)
    side = 2 * core  # two cores across and down: a seam each way
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (1, frames, side // 8 + 1, side // 8 + 1, 3)).astype(np.uint8)
    clips = np.ascontiguousarray(blocks.repeat(8, axis=2).repeat(8, axis=3)[:, :, :side, :side])  # edges to see across seams
    net = copy.deepcopy(generator).eval()
    whole = ClipGenerator(net, device)(clips)
    tiled = ClipGenerator(net, device, tiling=Tiling(Size(core + 2 * halo, core + 2 * halo), halo))(clips)
    return mean_psnr(whole, tiled)


def structure_facts(generator, frames, size, device):
    """What the verdict page shows of a structure, in numbers: {"parameters" (millions), "gflop"
    (a forward pass of one clip of `frames` frames of `size`), "frames" and "pixels" (the receptive
    field in time and space; None: the whole clip or frame)}."""
    multiple = size_multiple(generator)
    width, height = round_up(size.width, multiple), round_up(size.height, multiple)
    clip = torch.rand(1, 3, frames, height, width, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    # The receptive field is the structure's, measured from gradients: on fresh weights of the body, as
    # inspect-network measures it, since trained weights can saturate and a residual body starts at zero.
    fresh = copy.deepcopy(generator.body if isinstance(generator, Residual) else generator)
    with torch.random.fork_rng(devices=[]):  # seeded here, and the caller's random state left as it was
        torch.manual_seed(0)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    in_time, in_space = temporal_radius(fresh), receptive_radius(fresh)
    return {"parameters": count_parameters(generator) / 1e6, "gflop": flops(generator, clip)[0],
            "frames": None if in_time is None else 2 * in_time + 1, "pixels": None if in_space is None else 2 * in_space + 1}


def inspect_generator(generator, frames, size, device):
    """([Fact], [problem]) of a built generator at clips of `frames` frames of `size` (a Size,
    rounded up to its size multiple). Each problem is one line that says what is wrong."""
    problems, facts = [], []
    multiple = size_multiple(generator)
    width, height = round_up(size.width, multiple), round_up(size.height, multiple)
    generator = generator.to(device).eval()
    clip = torch.rand(1, 3, frames, height, width, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    facts.append(Fact("parameters", f"{count_parameters(generator) / 1e6:.3f} M"))
    facts.append(Fact("size multiple", f"frame sides must be multiples of {multiple}"))
    try:
        check_size(generator, height, width)
        mismatch = clip_mismatch(generator, clip)
    except (RuntimeError, SizeError) as exc:
        mismatch = f"fails on a clip of {tuple(clip.shape)}: {str(exc).splitlines()[0]}"
    if mismatch:
        problems.append(f"clip to clip: it {mismatch}")
        return facts, problems  # nothing below means anything for a network that does not map clips
    facts.append(Fact("clip to clip", f"{tuple(clip.shape)} in [-1, 1] -> the same shape, in [-1, 1]"))
    forward_gflop, backward_gflop = flops(generator, clip)
    facts.append(Fact("GFLOP per clip", f"{forward_gflop:.3f} forward, {backward_gflop:.3f} backward "
                                        f"({frames} frames of {width}x{height}; convolutions and matrix products)"))
    in_time = temporal_radius(generator)
    in_space = receptive_radius(generator)
    facts.append(Fact("receptive field in time", "the whole clip, however long" if in_time is None else
                      f"{2 * in_time + 1} frames ({in_time} either way)"
                      + ("" if in_time is None or 2 * in_time + 1 < frames else f"; a clip of {frames} frames is all within it")))
    facts.append(Fact("receptive field in space", "the whole frame" if in_space is None else
                      f"{2 * in_space + 1} pixels ({in_space} either way)"))
    fixed, per_pixel = forward_cost(generator, frames, device)
    facts.append(Fact("memory per pixel", f"{per_pixel / frames:.0f} bytes per pixel of each frame in a float32 forward pass "
                                          f"(and {fixed / 1e6:.1f} MB fixed)"))
    identity_gap = residual_starts_at_identity(generator, clip)
    if identity_gap > 1e-6:
        problems.append(f"--residual: an untrained residual copy differs from the identity by {identity_gap:.3g}")
    else:
        facts.append(Fact("--residual", "starts exactly at the identity"))
    for way in WAYS[1:]:
        failure = way_failure(generator, clip, way, device)
        if failure:
            problems.append(f"{way.name}: {failure}")
    facts.append(Fact("bfloat16 and channels_last_3d", "forward and backward run in each"
                      if not any(p.startswith(("bf16", "fp32 channels")) for p in problems) else "see the problems below"))
    try:
        halo = tiling_halo(generator)
    except NotTileable as exc:
        problems.append(f"tiles: {exc.message}")
    else:
        agreement = tiles_agreement(generator, frames, halo, device)
        if agreement < TILE_AGREEMENT_DB:
            problems.append(f"tiles: tiled inference differs from whole frames ({agreement:.1f} dB PSNR, under {TILE_AGREEMENT_DB:g}); "
                            f"a norm or gate over whole frames that vgan cannot share between tiles (use networks.layers.InstanceNorm3d)")
        else:
            agree = "exactly" if agreement >= PSNR_CAP_DB else f"to {agreement:.1f} dB PSNR"
            facts.append(Fact("tiles", f"match whole frames {agree} ({halo} pixels of context a side)"))
    return facts, problems


def way_failure(generator, clip, way, device):
    """How a forward and backward pass in `way` fails, in one line; None when it runs and is finite."""
    net = copy.deepcopy(generator).to(memory_format=way.memory_format).train()
    x = clip.to(memory_format=way.memory_format) if way.channels_last else clip
    try:
        with autocast(device, way.amp):  # bfloat16 is emulated on a CPU without it in hardware: slow, but it runs
            out = net(x)
        out.float().sum().backward()
    except RuntimeError as exc:
        return f"fails: {str(exc).splitlines()[0][:160]}"
    if not torch.isfinite(out.float()).all():
        return "gives values that are not finite"
    return None


def time_generator(generator, clip, device, rounds=TIMED_ROUNDS):
    """{way name: (forward s, forward and backward s)}, each the median of `rounds` after a warm-up
    with the ways taking turns (compute/'s one timer, as autotune times them). A way that fails is
    left out, and so is bfloat16 where it is not in hardware (emulated, it is many times slower)."""
    ways = [way for way in WAYS if (amp_pays_here(device) or not way.amp) and way_failure(generator, clip, way, device) is None]

    def seconds(backward):
        def prepare(way):
            net = copy.deepcopy(generator).to(memory_format=way.memory_format).train()
            x = clip.to(memory_format=way.memory_format) if way.channels_last else clip

            def forward():
                with torch.no_grad(), autocast(device, way.amp):
                    net(x)

            def forward_and_backward():
                with autocast(device, way.amp):
                    out = net(x)
                out.float().sum().backward()

            return forward_and_backward if backward else forward

        return measure_ways(ways, way_timer(ways, prepare, device), rounds)

    return {way.name: pair for way, pair in zip(ways, zip(seconds(False), seconds(True)))}
