"""Networks named by where their class is: a built-in's registry name, `FILE.py:Class` (a Python
file anywhere) or `package.module:Class` (a module on the Python path). Only `load_class` runs the
file's code; locating it, hashing it and reading its declaration (networks/declared.py) do not.

An experiment records a plug-in's file and its SHA-256 (`source_record`); compare, evaluate and
--resume import that file again only while its hash still matches (`verified_source`).

    spec = NetworkSpec.parse("examples/factorised.py:Factorised", GENERATORS)
    cls = load_class(spec)                    # imports examples/factorised.py
"""
import hashlib
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError, warn


@dataclass(frozen=True)
class NetworkSpec:
    """Where a network class is: `module` is a dotted module or a .py file; `builtin` its registry name."""

    text: str  # as typed: "unet", "my_nets.py:TinyUNet", "mypackage.nets:TinyUNet"
    module: str
    class_name: str
    builtin: str | None = None

    @classmethod
    def parse(cls, text, registry):
        """The spec `text` names: a name in `registry` ({name: NetworkEntry}) or MODULE_OR_FILE:Class.
        Raises ValueError, naming the forms, for anything else."""
        text = str(text)
        if text in registry:
            module, _, name = registry[text].code.partition(":")
            return cls(text, module, name, builtin=text)
        where, colon, name = text.rpartition(":")
        if not colon or not where or not name.isidentifier():
            raise ValueError(f"{text!r} is neither a built-in ({', '.join(sorted(registry))}) nor FILE.py:Class or "
                             f"package.module:Class")
        return cls(text, where, name)

    @property
    def is_file(self):
        return self.module.endswith(".py")

    @property
    def short_name(self):
        """A name for folders and lines: the registry name, or the class's."""
        return self.builtin or self.class_name

    def source(self):
        """The Python file that defines the class (a module is found without running it; its parent
        packages are imported, as Python must to find it)."""
        if self.is_file:
            path = Path(self.module).resolve()
            if not path.is_file():
                raise UserError(self.module, "no such file (a network is FILE.py:Class or package.module:Class)")
            return path
        try:
            found = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin or not Path(found.origin).is_file():
            raise UserError(self.module, "no module of that name on the Python path (a file is given as FILE.py:Class)")
        return Path(found.origin)


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def source_record(spec):
    """What an experiment keeps about a plug-in, so that it can be used again honestly: the spec,
    the file's absolute path and its SHA-256. None for a built-in (vgan itself is its source)."""
    if spec.builtin:
        return None
    path = spec.source()
    return {"spec": spec.text, "class": spec.class_name, "file": str(path), "sha256": sha256_of(path)}


def verified_source(record, moved_to=None, allow_changed=False):
    """The file to import for a recorded plug-in: the recorded one, or `moved_to` (--network-source),
    while its SHA-256 is the recorded one. A changed file is refused naming both hashes unless
    `allow_changed` (--allow-changed-network), which warns."""
    path = Path(moved_to or record["file"])
    if not path.is_file():
        raise UserError(path, f"the network file this run was trained with is not there (its SHA-256 was {record['sha256'][:16]}); "
                              f"pass --network-source PATH to where it is now")
    now = sha256_of(path)
    if now != record["sha256"]:
        message = (f"has changed since the run was trained: SHA-256 {now[:16]} now, {record['sha256'][:16]} when trained "
                   f"(the experiment folder keeps a copy of the original)")
        if not allow_changed:
            raise UserError(path, f"{message}; pass --network-source PATH to the original, or --allow-changed-network to go on")
        warn(path, f"{message}; going on with the file as it is now (--allow-changed-network)")
    return path


def load_class(spec, file=None):
    """Import the class `spec` names (from `file` instead of its own place when given, e.g. a
    verified source) and check it is a torch.nn.Module. Every failure is one UserError naming the file."""
    from torch import nn

    if spec.builtin and file is None:
        module, where = importlib.import_module(spec.module), spec.module
    elif not spec.is_file and _is_where_the_module_is(spec, file):  # as a module, so that its relative imports work
        module, where = _import_module(spec.module), spec.module
    else:
        path = Path(file) if file is not None else spec.source()
        module, where = _import_file(path), path
    cls = getattr(module, spec.class_name, None)
    if cls is None:
        raise UserError(where, f"has no class {spec.class_name}")
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise UserError(where, f"{spec.class_name} is not a torch.nn.Module")
    return cls


def _is_where_the_module_is(spec, file):
    """Whether the module `spec` names is found (a missing one is named as such) and is `file`, when given."""
    if file is None:
        spec.source()
        return True
    try:
        return spec.source() == Path(file).resolve()
    except UserError:
        return False  # moved: imported from the file it was moved to


def _import_file(path):
    """The module of a .py file, imported under a name that its path and content make unique, so
    that two files called nets.py, or two versions of one, never stand in for each other."""
    name = "vgan_plugin_" + hashlib.sha256(f"{path.resolve()}:{sha256_of(path)}".encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    found = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # before it runs: dataclasses and pickling look their module up there
    try:
        found.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(path, f"importing it raised {_raised(exc, path)}") from None
    return module


def _import_module(dotted):
    try:
        return importlib.import_module(dotted)
    except Exception as exc:
        raise UserError(dotted, f"importing it raised {_raised(exc, None)}") from None


def _raised(exc, path):
    """'NameError: name 'x' is not defined (line 12)': the exception and the line of the file it came from."""
    line = exc.lineno if isinstance(exc, SyntaxError) else None
    for frame in traceback.extract_tb(exc.__traceback__):
        if path is None or Path(frame.filename).resolve() == Path(path).resolve():
            line = frame.lineno
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}" + (f": {text}" if text else "") + (f" (line {line})" if line else "")
