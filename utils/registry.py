"""One pattern for every registry in vgan (networks, modes, adversarial losses, metrics, samplers,
pruners): a module-level dict {name: record}, each record frozen plain data that names its code
as a "module:attr" string instead of importing it. `load` imports the code when it is needed, so
a registry module imports without torch (-h reads names and summaries from the records themselves)
and adding an entry to its dict adds it everywhere, the command line included.

    MODES["cycle"].summary               # plain data, no import
    step_class = load(MODES["cycle"].code)   # imports training.modes now
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """A registered thing: one line for -h and where its code is ("module:attr"). A registry's own
    record adds the plain data the command line needs before that code is imported."""

    summary: str
    code: str

    def load(self):
        return load(self.code)


def load(ref):
    """The attribute a "module:attr" reference names, its module imported now."""
    module, colon, attribute = ref.partition(":")
    if not colon or not module or not attribute:
        raise ValueError(f"{ref!r} is not a module:attr reference")
    return getattr(importlib.import_module(module), attribute)
