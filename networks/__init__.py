"""The networks: the registries of built-in generators and discriminators, and building any network
from its spec: a registry name, FILE.py:Class or package.module:Class (networks/plugin.py). The
registries import none of the networks, so that the command line can read their names and
declared hyperparameters (networks/declared.py) without loading torch. Adding a built-in network
is its file plus one entry in networks/registry.py.

    G = build_generator("unet", channels=16, depth=4)
    G = build_generator("examples/factorised.py:Factorised", width=16)
"""
import inspect

from networks.plugin import NetworkSpec, load_class
from networks.registry import ADVERSARIAL_LOSSES, DISCRIMINATORS, GENERATORS
from utils.errors import UserError


def generator_spec(text):
    """The NetworkSpec -net `text` names (one already parsed is itself)."""
    return text if isinstance(text, NetworkSpec) else NetworkSpec.parse(text, GENERATORS)


def discriminator_spec(text):
    return text if isinstance(text, NetworkSpec) else NetworkSpec.parse(text, DISCRIMINATORS)


def generator_class(text):
    """The class of the generator `text` names (a plug-in's file is imported)."""
    return load_class(generator_spec(text))


def build_generator(text, residual=False, source=None, **kwargs):
    """The generator `text` names, built with explicit keyword hyperparameters (a plug-in imported
    from `source` when given: its verified file); with `residual`, wrapped to predict a correction
    to its input (identity at initialisation)."""
    from networks.layers import Residual

    generator = construct(generator_spec(text), kwargs, source)
    return Residual(generator) if residual else generator


def has_adversary(gan_loss):
    """Whether --gan-loss `gan_loss` trains a discriminator."""
    return ADVERSARIAL_LOSSES[gan_loss].adversary


def build_discriminator(text, source=None, **kwargs):
    return construct(discriminator_spec(text), kwargs, source)


def construct(spec, kwargs, source=None):
    """An instance of the class `spec` names; arguments it does not take, or a constructor that
    raises, are one UserError naming its file."""
    cls = load_class(spec, source)
    if spec.builtin:
        return cls(**kwargs)
    where = source or spec.source()
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = [name for name in kwargs if name not in parameters]
        if unknown:
            raise UserError(where, f"{spec.class_name} takes no argument {unknown[0]!r} (it takes {', '.join(parameters) or 'none'})")
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise UserError(where, f"{spec.class_name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
