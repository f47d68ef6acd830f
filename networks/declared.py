"""A network's hyperparameters, as it declares them beside its class: the keyword arguments of its
__init__ with their defaults and annotations, and, for a built-in, the class's FLAGS
{argument: (flag, help)} or (flag, help, minimum) for a number that may go below 1. Read from the
source with `ast`, without importing it, so that `-h` loads no torch and runs no plug-in's code.
The train flags, the networks' arguments, the flags `--resume` may not change and what `runs`
shows all come from here; a plug-in's arguments are set with --net-arg NAME=VALUE instead of flags.

    declared(generator_spec("unet"))   # -> (Hyperparameter("channels", "--channels", 16, "generator channels ...", 1), ...)
    typed_arguments(spec, ["width=32"])   # -> {"width": 32}, typed by the annotation or the default
"""
import ast
import functools
from dataclasses import dataclass

from utils.errors import UserError

SET_BY_VGAN = ("in_channels", "out_channels")  # a generator maps 3 channels to 3; a discriminator sees its pair
REQUIRED = object()  # an argument without a default


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


@dataclass(frozen=True)
class Argument:
    """One keyword argument of a constructor, as its source states it."""

    name: str
    default: object = REQUIRED  # REQUIRED, or the literal default
    annotation: str | None = None  # "int", "float", "bool", "str", or another expression as written


def as_spec(spec):
    """A NetworkSpec as is; a built-in's registry name as its spec."""
    from networks import DISCRIMINATORS, GENERATORS, NetworkSpec

    return spec if isinstance(spec, NetworkSpec) else NetworkSpec.parse(spec, {**GENERATORS, **DISCRIMINATORS})


def _class_node(spec):
    return _class_node_of(as_spec(spec))


@functools.lru_cache(maxsize=None)  # a declaration does not change while vgan runs
def _class_node_of(spec):
    """The class's ast node in its source file, or None when the file defines it in a way a reading
    cannot see (made by a function, imported from elsewhere): then only importing it can tell."""
    source = spec.source()
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(source, f"cannot be read as Python: {type(exc).__name__}: {exc}") from None
    return next((node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == spec.class_name), None)


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return REQUIRED  # a default that is an expression (e.g. nn.ReLU): not settable from the command line


def constructor_arguments(spec):
    """The keyword arguments of the class's own __init__, in order (None when it has none of its own in
    the source: it inherits one, or the class is not written there)."""
    node = _class_node(spec)
    init = node and next((item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"), None)
    if init is None:
        return None
    positional = init.args.posonlyargs + init.args.args
    defaults = [REQUIRED] * (len(positional) - len(init.args.defaults)) + [_literal(d) for d in init.args.defaults]
    pairs = list(zip(positional, defaults))[1:]  # not self
    pairs += [(a, REQUIRED if d is None else _literal(d)) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults)]
    return tuple(Argument(a.arg, d, ast.unparse(a.annotation) if a.annotation is not None else None) for a, d in pairs)


def constructor_defaults(spec):
    """{keyword: default} of the class's __init__ (keywords without a literal default left out)."""
    return {a.name: a.default for a in constructor_arguments(spec) or () if a.default is not REQUIRED}


def settable_arguments(spec):
    """The constructor arguments a user may set (with --net-arg or --disc-arg): all but those vgan sets."""
    return tuple(a for a in constructor_arguments(spec) or () if a.name not in SET_BY_VGAN)


def declared(spec):
    """The Hyperparameters a built-in network declares in its FLAGS, in order (none for a plug-in)."""
    spec = as_spec(spec)
    node = _class_node(spec) if spec.builtin else None
    flags = next((ast.literal_eval(item.value) for item in (node.body if node else ())
                  if isinstance(item, ast.Assign) and [getattr(t, "id", None) for t in item.targets] == ["FLAGS"]), {})
    defaults = constructor_defaults(spec)
    return tuple(Hyperparameter(argument, entry[0], defaults[argument], *entry[1:]) for argument, entry in flags.items())


def typed_arguments(spec, pairs, flag="--net-arg"):
    """{name: value} from NAME=VALUE texts, each typed by its argument's annotation or default
    (bool takes on/off, true/false, 1/0; a value of another kind is read as a Python literal, or
    kept as text). An argument the constructor does not take is refused, naming the ones it does."""
    spec = as_spec(spec)
    arguments = {a.name: a for a in settable_arguments(spec)}
    known = constructor_arguments(spec) is not None
    source = spec.source()
    typed = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise UserError(flag, f"{pair!r} is not NAME=VALUE")
        if known and name not in arguments:
            takes = ", ".join(arguments) or "no arguments"
            raise UserError(source, f"{spec.class_name} takes no argument {name!r} (it takes {takes})")
        try:
            typed[name] = _typed(text.strip(), arguments.get(name))
        except ValueError as exc:
            raise UserError(flag, f"{name}={text}: {exc}") from None
    return typed


def _typed(text, argument):
    kind = argument.annotation if argument and argument.annotation else None
    if kind is None and argument is not None and argument.default not in (REQUIRED, None):
        kind = type(argument.default).__name__
    if kind == "bool":
        words = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}
        if text.lower() not in words:
            raise ValueError("expected on or off")
        return words[text.lower()]
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}") from None
    if kind == "str":
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def described(spec, flag="--net-arg"):
    """The settable arguments in words, one per line, for `train -net FILE.py:Class -h`."""
    spec = as_spec(spec)
    arguments = settable_arguments(spec)
    if constructor_arguments(spec) is None:
        return f"  (the arguments of {spec.class_name} are known once it is imported)"
    if not arguments:
        return f"  ({spec.class_name} takes no arguments)"
    return "\n".join(f"  {flag} {a.name}=" + ("VALUE (required)" if a.default is REQUIRED else repr(a.default))
                     + (f"   ({a.annotation})" if a.annotation else "") for a in arguments)
