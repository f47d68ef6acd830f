"""Tiled inference: exact where a tile covers the frame, within 45 dB of untiled with real tiles,
within the memory budget on a 4K frame, a one-line refusal when nothing fits; progress on long commands."""
import json
import re
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, assert_user_error, make_video, run_cli, run_group
from inference.generate import ClipGenerator
from training.trained_model import load_model
from inference.tiles import Tiling, fit_tiling, forward_cost, norm_layers, passes_over, peak_bytes, receptive_radius, run_tiled, spans
from networks import build_generator
from networks.layers import Residual, size_multiple
from utils.errors import UserError
from media.probe import probe
from metrics.scores import psnr
from utils.size import Size

CPU = torch.device("cpu")


def natural_clips(clips=2, frames=5, size=Size(96, 80), seed=0):
    """uint8 (clips, frames, H, W, 3): a photograph panning sideways, with noise."""
    import cv2
    import skimage.data

    image = cv2.resize(skimage.data.astronaut(), (size.width + 4 * frames, size.height))
    rng = np.random.default_rng(seed)
    shots = [[image[:, 4 * t + c:4 * t + c + size.width] for t in range(frames)] for c in range(clips)]
    return np.clip(np.array(shots, dtype=float) + rng.normal(0, 12, (clips, frames, size.height, size.width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def networks():
    """Generators with random weights, spread wide enough that their output is a picture with texture."""
    torch.manual_seed(0)
    made = {"unet": build_generator("unet", channels=4, depth=2), "resnet": build_generator("resnet", channels=4, blocks=2)}
    for network in made.values():
        for parameter in network.parameters():
            parameter.data.normal_(0, 0.3)
    return {name: network.eval() for name, network in made.items()}


def agreement(a, b):
    return float(psnr(a, b).mean())


@pytest.mark.parametrize("name", ["unet", "resnet"])
def test_a_tile_covering_the_frame_is_untiled_inference_bit_for_bit(networks, name):
    clips = natural_clips()
    untiled = ClipGenerator(networks[name], CPU)(clips)
    whole = ClipGenerator(networks[name], CPU, tiling=Tiling(Size(96, 80), 0, tiles_per_pass=2))(clips)
    assert np.array_equal(whole, untiled)


@pytest.mark.parametrize("name", ["unet", "resnet"])
def test_real_tiles_agree_with_untiled_inference_within_45_db(networks, name):
    network, clips = networks[name], natural_clips()
    untiled = ClipGenerator(network, CPU)(clips)
    assert untiled.std() > 10  # a picture, not a flat field that any tiling reproduces
    radius = receptive_radius(network)
    tiling = Tiling.aligned(Size(2 * radius + 16, 2 * radius + 16), radius, network.size_multiple, tiles_per_pass=3)
    assert tiling.tile.width < 96 and tiling.tile.height < 80  # several tiles per frame
    assert agreement(ClipGenerator(network, CPU, tiling=tiling)(clips), untiled) >= 45.0
    # The halo and the frame's norm statistics are what make it agree: without them it falls short.
    thin = Tiling.aligned(tiling.tile, 0, network.size_multiple)
    assert agreement(ClipGenerator(network, CPU, tiling=thin)(clips), untiled) < 45.0


def layer_calls(network):
    """A counter of how often each convolution of `network` runs."""
    calls = []
    for module in network.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.register_forward_hook(lambda module, inputs, output: calls.append(module))
    return calls


@pytest.mark.parametrize("name, channels_last", [("unet", False), ("resnet_se", True), ("residual_unet", False)])
def test_tiles_layer_by_layer_give_what_a_pass_per_norm_layer_gives_computing_each_layer_once(name, channels_last):
    torch.manual_seed(0)
    network = {"unet": lambda: build_generator("unet", channels=4, depth=2),
               "resnet_se": lambda: build_generator("resnet", channels=4, blocks=2, squeeze_excite=True),
               "residual_unet": lambda: Residual(build_generator("unet", channels=4, depth=2))}[name]().eval()
    for parameter in network.parameters():
        parameter.data.normal_(0, 0.3)
    clips = natural_clips(frames=3)
    radius = receptive_radius(network)
    tiling = Tiling.aligned(Size(2 * radius + 16, 2 * radius + 16), radius, size_multiple(network), tiles_per_pass=2)
    assert tiling.tile.width < 96 and tiling.tile.height < 80  # several tiles per frame
    generator = ClipGenerator(network, CPU, channels_last=channels_last, tiling=tiling)
    assert generator.layer_plan is not None and len(generator.layer_plan.norms) == len(norm_layers(network))
    calls = layer_calls(network)
    with torch.inference_mode():
        by_layer = generator(clips)
        once = len(calls)
        per_norm_layer = run_tiled(generator.generate, clips, tiling, norm_layers(network))
    assert np.array_equal(by_layer, per_norm_layer)  # the same tiles, the same statistics, the same numbers
    generator.scratch_memory = 2 ** 30  # what waits between layers in RAM rather than in files on disk
    with torch.inference_mode():
        assert np.array_equal(generator(clips), by_layer)
    convolutions = sum(isinstance(m, torch.nn.Conv3d) for m in network.modules())
    assert once == convolutions * len(passes_over(clips, tiling))  # every convolution once per pass over the tiles
    assert len(calls) - once > 2 * once  # where a pass per norm layer computes the early layers again and again


def test_a_network_torch_fx_cannot_trace_runs_in_tiles_all_the_same():
    class Branching(torch.nn.Module):  # Python control flow on the input's values: no trace
        def __init__(self):
            super().__init__()
            self.body = build_generator("unet", channels=4, depth=2)

        def forward(self, x):
            return self.body(x) if x.mean() > -2 else x

    network, clips = Branching().eval(), natural_clips(clips=1, frames=3)
    radius = receptive_radius(network)
    tiling = Tiling.aligned(Size(2 * radius + 16, 2 * radius + 16), radius, 4)
    generator = ClipGenerator(network, CPU, tiling=tiling)
    assert generator.layer_plan is None
    assert agreement(generator(clips), ClipGenerator(network, CPU)(clips)) >= 45.0


def test_tile_cores_are_even_partition_the_frame_and_sit_on_the_pooling_grid():
    for length, tile, halo, multiple in [(1280, 512, 48, 8), (720, 512, 48, 8), (200, 64, 12, 4), (96, 96, 12, 4)]:
        parts = spans(length, tile, halo, multiple)
        cores = [(c0, c1) for _, _, c0, c1 in parts]
        assert cores[0][0] == 0 and cores[-1][1] == length and all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
        assert all(w1 - w0 <= tile and w0 == max(0, c0 - halo) and w1 == min(length, c1 + halo) for w0, w1, c0, c1 in parts)
        assert all(c0 % multiple == 0 and w0 % multiple == 0 for w0, _, c0, _ in parts)
        assert len({c1 - c0 for c0, c1 in cores[:-1]}) <= 1  # equal cores (the last takes what is left)
    assert [w for w in spans(1280, 512, 48, 8)] == [(0, 368, 0, 320), (272, 688, 320, 640), (592, 1008, 640, 960), (912, 1280, 960, 1280)]


def test_the_receptive_radius_is_measured_from_the_network(networks):
    deeper = build_generator("unet", channels=4, depth=3).eval()
    assert receptive_radius(deeper) > receptive_radius(networks["unet"]) > 0


def test_tiles_are_chosen_to_fit_the_budget_and_whole_frames_when_they_fit(networks):
    network = networks["unet"]
    roomy, _ = fit_tiling(network, (4, 4, 80, 96), 8 * 2**30, CPU)
    assert roomy == Tiling(Size(96, 80), 0, tiles_per_pass=4)
    one_clip = peak_bytes(network, torch.zeros(1, 3, 4, 480, 640), CPU)
    tiling, expected = fit_tiling(network, (2, 4, 480, 640), one_clip * 0.5, CPU)
    assert tiling.tile.width < 640 and expected <= one_clip * 0.5
    tile = peak_bytes(network, torch.zeros(1, 3, 4, tiling.tile.height, tiling.tile.width), CPU)
    assert tile <= one_clip * 0.5  # measured, the tile's forward pass keeps within the budget
    with pytest.raises(UserError, match=r"even tiles of \d+x\d+ pixels .* over the budget"):
        fit_tiling(network, (2, 4, 480, 640), 2**20, CPU)


def test_run_tiled_splits_a_batch_of_whole_frames_when_only_some_clips_fit(networks):
    network, clips = networks["unet"], natural_clips(clips=3)
    generator = ClipGenerator(network, CPU)
    with torch.inference_mode():
        in_ones = np.concatenate([generator.generate(clips[i:i + 1]) for i in range(3)])
        split = run_tiled(generator.generate, clips, Tiling(Size(96, 80), 0, tiles_per_pass=1), norm_layers(network))
    assert np.array_equal(split, in_ones)


def test_the_forward_cost_is_probed_once_per_machine_and_network(tiny_run, tmp_path, monkeypatch):
    import inference.generate as generate

    monkeypatch.setenv("VGAN_CACHE_DIR", str(tmp_path / "cache"))
    probes = []
    monkeypatch.setattr(generate, "forward_cost", lambda *args: probes.append(args) or forward_cost(*args))
    model = load_model(tiny_run[1], CPU)
    shapes = [(2, 4, 48, 64), (1, 4, 2160, 3840), (2, 4, 48, 64)]
    plans = [generate.clip_generator(model, CPU, shape, amp="off", memory_format="contiguous", max_memory=2**28).plan
             for shape in shapes]
    assert len(probes) == 1  # the cost per pixel is the network's, whatever the frame size
    assert plans[0] == plans[2] and "tiles of" in plans[1] and "whole 64x48" in plans[0]
    monkeypatch.setenv("VGAN_CACHE_DIR", str(tmp_path / "elsewhere"))
    generate.clip_generator(model, CPU, shapes[0], amp="off", memory_format="contiguous", max_memory=2**30)
    assert len(probes) == 2


@pytest.fixture(scope="module")
def clip4k(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("4k") / "4k.mp4", size="3840x2160", rate=25, seconds=0.16)  # 4 frames


@pytest.fixture(scope="module")
def frame4k(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("4k") / "frame4k.mp4", size="3840x2160", rate=25, seconds=0.04)  # 1 frame


@pytest.fixture(scope="module")
def lean_run(tmp_path_factory, tiny):
    """A U-Net of one level, two channels and (2+1)D convolutions (6 norm layers) trained for a step
    on clips of one frame: what a 4K frame in tiles costs on a 2-core CPU is mostly its norm layers'
    passes, each a convolution over the whole frame."""
    work = tmp_path_factory.mktemp("lean")
    result = run_cli("train", "--data", tiny, "--depth", "1", "--channels", "2", "--conv", "2plus1d", "--d-channels", "4",
                     "--d-layers", "2", "-pool", "1",
                     "--step", "1", "--max-steps", "1", "--amp", "off", "--memory-format", "contiguous", "--name", "lean", cwd=work)
    assert result.returncode == 0, result.stderr
    return work, work / "checkpoints" / "lean"


def peak_rss_of(*args, cwd):
    """(CompletedProcess, the peak resident bytes) of `python main.py ARGS`, measured by a parent of its own."""
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
               "print('peak', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(r.returncode)")
    result = run_group([sys.executable, "-c", measure, sys.executable, REPO / "main.py", *args], cwd=cwd, timeout=600)
    peak = int(result.stdout.strip().splitlines()[-1].split()[-1])
    return result, peak


def test_a_4k_frame_runs_in_tiles_within_the_budget(lean_run, frame4k, tmp_path):
    work, experiment = lean_run
    out, budget = tmp_path / "4k_compare.mp4", 2**27
    baseline, idle = peak_rss_of("compare", "--checkpoint", experiment, "--video", frame4k, "--dry-run", "--size", "64", cwd=work)
    assert baseline.returncode == 0, baseline.stderr
    result, peak = peak_rss_of("compare", "--checkpoint", experiment, "--video", frame4k, "-o", out, "--size", "3840x2160",
                               "--max-memory", str(budget), "--batch", "1", "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    side = re.search(r"tiles of (\d+)x(\d+)", result.stdout)
    assert side, result.stdout
    # The generator's part: a tile's forward pass, measured, keeps within the budget; the whole frame's would not.
    generator = load_model(experiment, CPU).generator
    tile = peak_bytes(generator, torch.zeros(1, 3, 1, int(side.group(2)), int(side.group(1))), CPU)
    fixed, per_pixel = forward_cost(generator, 1, CPU)
    assert tile <= budget < fixed + per_pixel * 3840 * 2160, (tile, budget, per_pixel)
    # The process's part: besides the generator's budget it holds the frame a few times over (decoded,
    # in float in and out: 2 x 4 bytes, generated, side by side: 3 panels) and SSIM's float64 maps of
    # one channel at a time (about 12 of 8 bytes a pixel: 32 times the frame's bytes).
    frame = 3840 * 2160 * 3
    assert peak - idle < budget + 48 * frame, (peak, idle)
    assert json.loads(out.with_suffix(".json").read_text())["frames"] == probe(out).frames == 1


def test_nothing_fitting_is_refused_in_one_line_before_starting(tiny_run, clip4k, tmp_path):
    work, experiment = tiny_run
    out = tmp_path / "never.mp4"
    result = run_cli("compare", "--checkpoint", experiment, "--video", clip4k, "-o", out, "--size", "3840x2160",
                     "--max-memory", "10M", cwd=work)
    assert_user_error(result, "--max-memory", "even tiles of", "3840x2160", "raise --max-memory")
    assert not out.exists()


@pytest.mark.parametrize("command", ["compare", "evaluate"])
def test_tile_by_hand_gives_the_same_scores_as_untiled_when_it_covers_the_frame(tiny_run, command, tmp_path):
    work, experiment = tiny_run
    video = make_video(tmp_path / "v.mp4", size="48x32", seconds=1)

    def scores(*extra):
        out = tmp_path / f"c{len(extra)}.mp4"
        args = ("--video", video, "-o", out) if command == "compare" else ("--json",)
        result = run_cli(command, "--checkpoint", experiment, *args, *extra, cwd=work)
        assert result.returncode == 0, result.stderr
        return json.loads(out.with_suffix(".json").read_text() if command == "compare" else result.stdout)["scores"]

    assert scores("--tile", "64x64") == scores()


def test_a_tile_with_no_room_inside_its_overlap_is_refused(tiny_run, tmp_path):
    work, experiment = tiny_run
    video = make_video(tmp_path / "v.mp4", size="128x96", seconds=1)
    result = run_cli("compare", "--checkpoint", experiment, "--video", video, "-o", tmp_path / "c.mp4", "--size", "128x96",
                     "--tile", "32", cwd=work)  # the tiny U-Net sees 22 pixels around each pixel: 32 leaves no core
    assert result.returncode == 2 and "argument --tile: 32x32 leaves no room" in result.stderr, result.stderr
    assert not (tmp_path / "c.mp4").exists()
