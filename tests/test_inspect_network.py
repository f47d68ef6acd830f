"""inspect-network: the receptive field it measures from gradients is the one the structure's
arithmetic gives, for the built-in U-Net and ResNet and for the example plug-in; every built-in
network and the example pass its checks; a network that sees the whole frame is not tileable,
and compare then refuses tiles for it."""
import re

import pytest

from conftest import REPO, assert_user_error, run_cli

CENTRE = 1 << 12  # an output index far from any border, on every pooling grid


def conv_back(indices, kernel, stride=1, padding=0, dilation=1):
    """The input indices that the outputs `indices` of a convolution (or max pool) read."""
    return {i * stride - padding + j * dilation for i in indices for j in range(kernel)}


def transposed_back(indices, kernel, stride, padding=0):
    """The input indices that the outputs `indices` of a transposed convolution read."""
    return {(o + padding - t) // stride for o in indices for t in range(kernel) if (o + padding - t) % stride == 0}


def unet_reach(depth, in_time):
    """The input indices along one axis that the centre output of UNet3D(depth) reads: the
    decoder's path and every skip's, level by level (pooling and upsampling only in space here)."""
    block = (lambda s: conv_back(conv_back(s, 3, padding=1), 3, padding=1))  # ConvBlock: two 3-wide convolutions
    down = (lambda s: s) if in_time else (lambda s: conv_back(s, 2, stride=2))
    up = (lambda s: s) if in_time else (lambda s: transposed_back(s, 2, 2))

    def encoder_input(level, s):  # s at the output of encoder block `level` -> the network's input
        s = block(s)
        return s if level == 0 else encoder_input(level - 1, down(s))

    def decoder(level, s):  # s at the output of decoder block `level`
        s = block(s)
        below = up(s)
        return encoder_input(level, s) | (decoder(level + 1, below) if level + 1 < depth else encoder_input(depth, below))

    return decoder(0, {CENTRE})


def resnet_reach(blocks, downsample, in_time):
    s = {CENTRE}
    stem = 3 if in_time else 7
    s = conv_back(s, stem, padding=stem // 2)  # the last convolution
    for _ in range(downsample):
        s = conv_back(s, 3, padding=1) if in_time else transposed_back(s, 4, 2, 1)
    for _ in range(2 * blocks):
        s = conv_back(s, 3, padding=1)
    for _ in range(downsample):
        s = conv_back(s, 3, padding=1) if in_time else conv_back(s, 4, stride=2, padding=1)
    return conv_back(s, stem, padding=stem // 2)


def radius(indices):
    return max(abs(i - CENTRE) for i in indices)


CASES = {
    "unet": (["-net", "unet", "--channels", "4", "--depth", "2"], radius(unet_reach(2, True)), radius(unet_reach(2, False))),
    "resnet": (["-net", "resnet", "--channels", "4", "--blocks", "1", "--downsample", "1"],
               radius(resnet_reach(1, 1, True)), radius(resnet_reach(1, 1, False))),
    # two blocks of a 5-wide temporal kernel dilated by 3: 2 x 3 x 2 = 12 frames either way; 1 + 2 pixels
    "example": (["-net", f"{REPO / 'examples' / 'factorised.py'}:Factorised", "--net-arg", "width=4", "--net-arg", "blocks=2",
                 "--net-arg", "dilation=3"], 2 * 3 * 2, 1 + 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_measured_receptive_field_is_the_structure_s_arithmetic_and_the_checks_pass(name, tmp_path):
    flags, frames, pixels = CASES[name]
    shown = run_cli("inspect-network", *flags, "-pool", "5", "--size", "32", "--no-timing", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr  # every check passed: no problem line
    assert "problem:" not in shown.stdout
    assert re.search(rf"receptive field in time\s+{2 * frames + 1} frames \({frames} either way\)", shown.stdout), shown.stdout
    assert re.search(rf"receptive field in space\s+{2 * pixels + 1} pixels \({pixels} either way\)", shown.stdout), shown.stdout
    for fact in ("parameters", "GFLOP per clip", "size multiple", "memory per pixel", "starts exactly at the identity",
                 "forward and backward run in each", "match whole frames"):
        assert fact in shown.stdout, fact


def test_the_arithmetic_itself_knows_the_u_net(tmp_path):
    """Its 3-wide convolutions alone give 6 x 2^depth - 4 pixels; pooling on the even grid adds 2."""
    assert [radius(unet_reach(depth, False)) for depth in (2, 3, 4)] == [6 * 2 ** d - 4 + 2 for d in (2, 3, 4)]
    assert radius(unet_reach(3, True)) == 2 * (2 * 3 + 1)  # no temporal pooling: two frames per block, 2d + 1 blocks


GLOBAL = '''import torch
from torch import nn


class GlobalMean(nn.Module):
    """Adds each frame's mean: every output pixel sees the whole frame."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x) + x.mean(dim=(3, 4), keepdim=True))
'''


def test_a_network_that_sees_the_whole_frame_is_not_tileable_and_compare_refuses_tiles(tmp_path, tiny, sample_video):
    (tmp_path / "global_nets.py").write_text(GLOBAL)
    net = ["-net", "global_nets.py:GlobalMean"]
    shown = run_cli("inspect-network", *net, "-pool", "5", "--size", "16", "--no-timing", cwd=tmp_path)
    assert shown.returncode == 1
    problems = [line for line in shown.stdout.splitlines() if line.startswith("problem:")]
    assert any("tiles:" in p and "depends on the whole frame" in p for p in problems), shown.stdout
    assert re.search(r"receptive field in space\s+the whole frame", shown.stdout), shown.stdout
    trained = run_cli("train", *net, "--data", tiny, "-pool", "4", "--batch", "2", "--d-channels", "4", "--d-layers", "2",
                      "--max-steps", "1", "--residual", "off", "--name", "g", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    refused = run_cli("compare", "--video", sample_video, "--checkpoint", tmp_path / "checkpoints" / "g", "--tile", "8",
                      "-o", tmp_path / "out.mp4", "--quiet", cwd=tmp_path)
    assert_user_error(refused, "--tile", "cannot run in tiles", "whole frame")
    assert not (tmp_path / "out.mp4").exists()


def test_timings_take_every_way_that_runs_here_and_bfloat16_only_in_hardware():
    import torch

    from compute.precision import amp_pays_here
    from inference.inspection import time_generator
    from networks import build_generator

    cpu = torch.device("cpu")
    timings = time_generator(build_generator("unet", channels=4, depth=2), torch.zeros(1, 3, 3, 16, 16), cpu, rounds=1)
    expected = {"fp32 contiguous", "fp32 channels_last"} | ({"bf16 contiguous", "bf16 channels_last"} if amp_pays_here(cpu) else set())
    assert set(timings) == expected
    assert all(0 < forward < float("inf") and 0 < both < float("inf") for forward, both in timings.values())
