"""3D PatchGAN: judges (input, output) clip pairs patch by patch, one logit per patch; with
in_channels=3 (the unpaired modes), unconditional: it judges clips alone.

Channels double per strided layer; LeakyReLU; instance norm, or spectral norm on every conv.
    PatchDiscriminator3D(channels=32, layers=3)(a, b).shape == (N, 1, T, H / 8 - 1, W / 8 - 1)
"""
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as add_spectral_norm

from networks.layers import conv3d, dcgan_init, norm3d


class PatchDiscriminator3D(nn.Module):
    # Its hyperparameters as train flags (networks/declared.py reads this without importing torch).
    FLAGS = {"channels": ("--d-channels", "discriminator channels at the first layer; they double per layer"),
             "layers": ("--d-layers", "discriminator strided layers"),
             "spectral_norm": ("--spectral-norm", "spectral norm on the discriminator's convolutions (instead of its "
                                                  "instance norm); it keeps the discriminator from winning in long runs")}

    def __init__(self, in_channels=6, channels=32, layers=3, spectral_norm=True, conv="3d"):
        super().__init__()
        wrap = add_spectral_norm if spectral_norm else (lambda layer: layer)
        down = {"kernel": (3, 4, 4), "stride": (1, 2, 2), "padding": 1, "conv": conv, "wrap": wrap}
        modules = [conv3d(in_channels, channels, **down), nn.LeakyReLU(0.2, inplace=True)]
        width = channels
        for _ in range(1, layers):
            modules += [conv3d(width, 2 * width, bias=spectral_norm, **down)]
            modules += [] if spectral_norm else [norm3d(2 * width)]
            modules += [nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        modules += [conv3d(width, 1, (3, 4, 4), padding=1, conv=conv, wrap=wrap)]
        self.net = nn.Sequential(*modules)
        dcgan_init(self)

    def forward(self, a, b=None):  # a: condition, b: real or generated clip, both (N, 3, T, H, W); or a alone
        return self.net(a if b is None else torch.cat([a, b], dim=1))  # (N, 1, T, h, w) logits
