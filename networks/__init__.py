"""The networks: a registry of generators and the discriminator. torch only.

    G = build_generator("unet", channels=16, depth=4)
"""
from networks.discriminator import PatchDiscriminator3D
from networks.layers import CONVS, Residual, SizeError, count_parameters
from networks.resnet3d import ResNet3D
from networks.unet3d import UNet3D

GENERATORS = {"unet": UNet3D, "resnet": ResNet3D}


def build_generator(name, residual=False, **kwargs):
    """The generator registered as `name`, built with explicit keyword hyperparameters; with
    `residual`, wrapped to predict a correction to its input (identity at initialisation)."""
    generator = GENERATORS[name](**kwargs)
    return Residual(generator) if residual else generator


__all__ = ["CONVS", "GENERATORS", "build_generator", "PatchDiscriminator3D", "SizeError", "count_parameters", "UNet3D", "ResNet3D"]
