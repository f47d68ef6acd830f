"""The networks: the registry of generators. The networks themselves are torch only; this registry
imports none of them, so that the command line can read their names and declared
hyperparameters (networks/declared.py) without loading torch. Adding a generator is its file
plus one line here.

    G = build_generator("unet", channels=16, depth=4)
"""
import importlib

GENERATORS = {"unet": "networks.unet3d:UNet3D", "resnet": "networks.resnet3d:ResNet3D"}  # name -> module:class


def generator_class(name):
    module, cls = GENERATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_generator(name, residual=False, **kwargs):
    """The generator registered as `name`, built with explicit keyword hyperparameters; with
    `residual`, wrapped to predict a correction to its input (identity at initialisation)."""
    from networks.layers import Residual

    generator = generator_class(name)(**kwargs)
    return Residual(generator) if residual else generator
