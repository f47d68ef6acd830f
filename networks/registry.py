"""The registries of what trains: the built-in generators and discriminators, the adversarial losses
and the training modes. Light records only (utils/registry.py): each names its code as
"module:attr", imported when a run needs it, so that the command line reads these tables without
loading torch. Adding a network, a loss or a mode is its code plus one entry here.

    GENERATORS["unet"].code               # "networks.unet3d:UNet3D"
    MODES["cycle"].unpaired               # True
    ADVERSARIAL_LOSSES["none"].adversary  # False: no discriminator trains
"""
from dataclasses import dataclass

from utils.registry import Entry


@dataclass(frozen=True)
class NetworkEntry(Entry):
    """A built-in network: its class's "module:Class"."""


@dataclass(frozen=True)
class LossEntry(Entry):
    """An adversarial loss: an Adversarial record (networks/losses.py); no code: no discriminator trains."""

    @property
    def adversary(self):
        return bool(self.code)


@dataclass(frozen=True)
class ModeEntry(Entry):
    """A training mode: its Mode (training/modes.py) and what the command line and run spec need before it loads."""

    unpaired: bool = False  # trains on an unpaired dataset's two sides; else on (input, target) pairs
    default_gan_loss: str = "dcgan"  # --gan-loss unless typed


GENERATORS = {
    "unet": NetworkEntry("3D U-Net: an encoder-decoder with skips, 3x3x3 or (2+1)D convolutions", "networks.unet3d:UNet3D"),
    "resnet": NetworkEntry("3D ResNet: residual blocks between a down- and an up-sampling", "networks.resnet3d:ResNet3D"),
}
DISCRIMINATORS = {
    "patch": NetworkEntry("3D PatchGAN with spectral norm: a real/fake score per patch of the clip",
                          "networks.discriminator:PatchDiscriminator3D"),
}

# --gan-loss NAME -> its losses; "none" trains no discriminator (a plain regression baseline).
ADVERSARIAL_LOSSES = {
    "dcgan": LossEntry("binary cross-entropy with logits (Goodfellow et al., DCGAN); the generator's non-saturating",
                       "networks.losses:DCGAN"),
    "lsgan": LossEntry("least squares towards 1 and 0 (Mao et al. 2017)", "networks.losses:LSGAN"),
    "hinge": LossEntry("a margin of 1 on either side (Lim & Ye 2017; SAGAN)", "networks.losses:HINGE"),
    "none": LossEntry("no discriminator: a plain regression baseline", ""),
}

# --mode NAME -> its Mode.
MODES = {
    "paired": ModeEntry("input -> target pairs (pix2pix)", "training.modes:PAIRED"),
    "cycle": ModeEntry("CycleGAN on an unpaired dataset (two generators, two unconditional discriminators, "
                       "cycle and identity losses)", "training.modes:CYCLE", unpaired=True, default_gan_loss="lsgan"),
    "recycle": ModeEntry("cycle plus Recycle-GAN's temporal predictors and recurrent and recycle losses",
                         "training.modes:RECYCLE", unpaired=True, default_gan_loss="lsgan"),
}
