"""Building blocks shared by the 3D generators and the discriminator (torch only).

Tensors are (N, C, T, H, W). Example: ConvBlock(3, 16)(torch.zeros(1, 3, 9, 64, 64)).shape == (1, 16, 9, 64, 64)
"""
from torch import nn


class SizeError(ValueError):
    """A clip whose size a network cannot take; the message names the size and the multiple needed."""


class Generator(nn.Module):
    """Base of the generators: they map (N, 3, T, H, W) to the same shape, and H and W must be
    multiples of `size_multiple` (2 to the number of halvings)."""

    size_multiple = 1

    def check_size(self, height, width):
        if height % self.size_multiple or width % self.size_multiple:
            raise SizeError(f"frames of {width}x{height} cannot go through {self}: width and height must be "
                            f"multiples of {self.size_multiple}")

    def __str__(self):
        return type(self).__name__


def norm3d(channels):
    # Instance norm: no batch statistics, so train and eval behave alike and DDP needs no syncing.
    return nn.InstanceNorm3d(channels, affine=True)


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions, each followed by instance norm and ReLU."""

    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False), norm3d(out_channels), nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False), norm3d(out_channels), nn.ReLU(inplace=True),
        )


class SqueezeExcite3d(nn.Module):
    """Channel attention (Hu et al. 2018): scale each channel by a gate computed from its global mean."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Conv3d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv3d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


def dcgan_init(module):
    """DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            weight = getattr(m, "weight_orig", m.weight)  # the raw weight under spectral norm
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.InstanceNorm3d, nn.BatchNorm3d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())

