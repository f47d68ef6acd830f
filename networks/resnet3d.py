"""3D ResNet generator: strided convolutions down (channels double per level), residual blocks
(optionally with squeeze-excitation), transposed convolutions back up, and a tanh output.

    ResNet3D(channels=16, blocks=6, downsample=2)(torch.zeros(1, 3, 9, 64, 64)).shape == (1, 3, 9, 64, 64)
"""
from torch import nn

from networks.layers import Generator, SqueezeExcite3d, conv3d, dcgan_init, norm3d


class ResidualBlock(nn.Module):
    def __init__(self, channels, squeeze_excite=False, conv="3d"):
        super().__init__()
        self.body = nn.Sequential(
            conv3d(channels, channels, 3, padding=1, bias=False, conv=conv), norm3d(channels), nn.ReLU(inplace=True),
            conv3d(channels, channels, 3, padding=1, bias=False, conv=conv), norm3d(channels),
            SqueezeExcite3d(channels) if squeeze_excite else nn.Identity(),
        )

    def forward(self, x):
        return x + self.body(x)


class ResNet3D(Generator):
    # Its hyperparameters as train flags (networks/declared.py reads this without importing torch).
    FLAGS = {"channels": ("--channels", "generator channels at the first level; they double per level"),
             "blocks": ("--blocks", "residual blocks"),
             "downsample": ("--downsample", "strided levels (frame sides must be multiples of 2^downsample)", 0),
             "squeeze_excite": ("--se", "squeeze-excitation in every residual block")}

    def __init__(self, in_channels=3, out_channels=3, channels=16, blocks=6, downsample=2, squeeze_excite=False, conv="3d"):
        super().__init__()
        self.downsample = downsample
        layers = [conv3d(in_channels, channels, (3, 7, 7), padding=(1, 3, 3), bias=False, conv=conv), norm3d(channels), nn.ReLU(inplace=True)]
        width = channels
        for _ in range(downsample):
            layers += [conv3d(width, 2 * width, (3, 4, 4), stride=(1, 2, 2), padding=1, bias=False, conv=conv),
                       norm3d(2 * width), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width, squeeze_excite, conv) for _ in range(blocks)]
        for _ in range(downsample):
            layers += [conv3d(width, width // 2, (3, 4, 4), stride=(1, 2, 2), padding=1, bias=False, conv=conv, transposed=True),
                       norm3d(width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [conv3d(width, out_channels, (3, 7, 7), padding=(1, 3, 3), conv=conv), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    @property
    def size_multiple(self):
        return 2 ** self.downsample

    def __str__(self):
        return f"resnet with {self.downsample} downsampling levels"

    def forward(self, x):  # (N, C, T, H, W) in [-1, 1]
        self.check_clip(x)
        return self.net(x)
