"""A generator's hyperparameters, as it declares them beside its class: the keyword arguments of
its __init__ with their defaults, and the class's FLAGS, {argument: (flag, help)} or
(flag, help, minimum) for a number that may go below 1. Read from the source without importing
it, so that `-h` loads no torch. The train flags, the generator's arguments, the flags `--resume`
may not change and what `runs` shows all come from here.

    declared("unet")   # -> (Hyperparameter("channels", "--channels", 16, "generator channels ...", 1), ...)
"""
import ast
import functools
import importlib.util
from dataclasses import dataclass

from networks import GENERATORS


def dest_of(flag):
    """argparse's attribute name for a flag: "--temporal-pool" -> "temporal_pool"."""
    return flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Hyperparameter:
    argument: str  # the constructor's keyword
    flag: str  # the train flag that sets it
    default: object
    help: str
    minimum: int = 1  # for numbers

    @property
    def dest(self):
        return dest_of(self.flag)


@functools.lru_cache(maxsize=None)  # a declaration does not change while vgan runs
def _class_node(name):
    module, cls = GENERATORS[name].split(":")
    source = importlib.util.find_spec(module).origin
    with open(source, encoding="utf-8") as f:
        tree = ast.parse(f.read(), source)
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == cls)


def constructor_defaults(name):
    """{keyword: default} of the generator's __init__ (keywords without a literal default left out)."""
    init = next(node for node in _class_node(name).body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    arguments = init.args.args[len(init.args.args) - len(init.args.defaults):] + init.args.kwonlyargs
    defaults = init.args.defaults + [d for d in init.args.kw_defaults]
    return {a.arg: ast.literal_eval(d) for a, d in zip(arguments, defaults) if d is not None}


def declared(name):
    """The Hyperparameters the generator registered as `name` declares in its FLAGS, in order."""
    body = _class_node(name).body
    flags = next(ast.literal_eval(node.value) for node in body
                 if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["FLAGS"])
    defaults = constructor_defaults(name)
    return tuple(Hyperparameter(argument, spec[0], defaults[argument], *spec[1:]) for argument, spec in flags.items())
