"""A generator written outside vgan, to show how a structure of your own is tested with it:

    python main.py inspect-network -net examples/factorised.py:Factorised --net-arg dilation=2
    python main.py train -net examples/factorised.py:Factorised --net-arg width=16 --max-steps 200

Unlike the built-in U-Net and ResNet, it never changes resolution, and it sees time through
factorised kernels: each block is a spatial 1x3x3 convolution, then a temporal 5x1x1 convolution
dilated by `dilation`: three blocks reach 3 x 2 x 2 = 12 frames either way at dilation 2 (the
temporal receptive field `inspect-network` measures), while they see only 1 + 3 = 4 pixels around
each pixel, with 9 + 5 = 14 weights per channel pair where a full 3x3x3 kernel has 27.

What vgan asks of a generator: an nn.Module whose constructor takes keyword arguments (its
hyperparameters, set with --net-arg NAME=VALUE and typed by their annotations), and whose forward
maps a clip (N, 3, T, H, W) in [-1, 1] to one of the same shape and range. Optional: a
`size_multiple` attribute when frame sides must be multiples of something. vgan's InstanceNorm3d
is used here so that tiled inference can share whole-frame statistics between tiles.
"""
import torch
from torch import nn

from networks.layers import InstanceNorm3d


class FactorisedBlock(nn.Module):
    """x + temporal(spatial(x)): a residual block whose kernels see space and time in turn."""

    def __init__(self, width, temporal_kernel, dilation):
        super().__init__()
        reach = dilation * (temporal_kernel - 1) // 2
        self.body = nn.Sequential(
            nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1), bias=False), InstanceNorm3d(width), nn.ReLU(inplace=True),
            nn.Conv3d(width, width, (temporal_kernel, 1, 1), padding=(reach, 0, 0), dilation=(dilation, 1, 1), bias=False),
            InstanceNorm3d(width), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return x + self.body(x)


class Factorised(nn.Module):
    def __init__(self, width: int = 16, blocks: int = 3, temporal_kernel: int = 5, dilation: int = 2):
        super().__init__()
        if temporal_kernel % 2 == 0:
            raise ValueError("temporal_kernel must be odd, so that a frame's output is centred on it")
        self.stem = nn.Conv3d(3, width, (1, 3, 3), padding=(0, 1, 1))
        self.blocks = nn.Sequential(*(FactorisedBlock(width, temporal_kernel, dilation) for _ in range(blocks)))
        self.head = nn.Conv3d(width, 3, 1)

    def forward(self, x):  # (N, 3, T, H, W) in [-1, 1]
        return torch.tanh(self.head(self.blocks(self.stem(x))))
