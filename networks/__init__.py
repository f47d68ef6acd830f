"""The networks: a registry of generators and the discriminator. torch only.

    G = build_generator("unet", channels=16, depth=4)
"""
from networks.discriminator import PatchDiscriminator3D
from networks.layers import CONVS, SizeError, count_parameters
from networks.resnet3d import ResNet3D
from networks.unet3d import UNet3D

GENERATORS = {"unet": UNet3D, "resnet": ResNet3D}


def build_generator(name, **kwargs):
    """The generator registered as `name`, built with explicit keyword hyperparameters."""
    return GENERATORS[name](**kwargs)


__all__ = ["CONVS", "GENERATORS", "build_generator", "PatchDiscriminator3D", "SizeError", "count_parameters", "UNet3D", "ResNet3D"]
