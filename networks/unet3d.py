"""3D U-Net generator: an encoder that halves space (and time, with temporal_pool) per level while
channels double, a decoder that mirrors it, skip connections between them, and a tanh output.

    UNet3D(channels=16, depth=4)(torch.zeros(1, 3, 9, 64, 64)).shape == (1, 3, 9, 64, 64)
"""
import torch
from torch import nn

from networks.layers import ConvBlock, Generator, dcgan_init


class UNet3D(Generator):
    # Its hyperparameters as train flags (networks/declared.py reads this without importing torch).
    FLAGS = {"channels": ("--channels", "generator channels at the first level; they double per level"),
             "depth": ("--depth", "levels (frame sides must be multiples of 2^depth)"),
             "temporal_pool": ("--temporal-pool", "pool over time as well as space")}

    def __init__(self, in_channels=3, out_channels=3, channels=16, depth=4, temporal_pool=False, conv="3d"):
        super().__init__()
        self.depth, self.temporal_pool = depth, temporal_pool
        widths = [channels * 2 ** level for level in range(depth + 1)]
        kernel = (2, 2, 2) if temporal_pool else (1, 2, 2)
        # ceil_mode keeps an odd clip length from losing its last frame; the decoder crops back.
        self.down = nn.MaxPool3d(kernel, ceil_mode=True)
        self.encoder = nn.ModuleList([ConvBlock(in_channels, widths[0], conv)] +
                                     [ConvBlock(widths[level - 1], widths[level], conv) for level in range(1, depth + 1)])
        self.upsample = nn.ModuleList([nn.ConvTranspose3d(widths[level + 1], widths[level], kernel, stride=kernel)
                                       for level in range(depth)])
        self.decoder = nn.ModuleList([ConvBlock(2 * widths[level], widths[level], conv) for level in range(depth)])
        self.head = nn.Conv3d(widths[0], out_channels, 1)
        dcgan_init(self)

    @property
    def size_multiple(self):
        return 2 ** self.depth

    def __str__(self):
        return f"unet of depth {self.depth}"

    def forward(self, x):  # (N, C, T, H, W) in [-1, 1]
        self.check_clip(x)
        skips = []
        for block in self.encoder[:-1]:
            x = block(x)
            skips.append(x)
            x = self.down(x)
        x = self.encoder[-1](x)  # (N, channels * 2^depth, T', H / 2^depth, W / 2^depth)
        for level in reversed(range(self.depth)):
            skip = skips[level]
            x = self.upsample[level](x)[:, :, : skip.shape[2]]
            x = self.decoder[level](torch.cat([x, skip], dim=1))
        return torch.tanh(self.head(x))
