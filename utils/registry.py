"""The names in a registry, read from its module's source without importing it: a registry is a
module-level dict literal {name: entry} (an entry may be a name assigned above it), and the command line needs its names (and each entry's
one-line `summary`) for choices and -h, which must not load torch. The module stays the registry's
one home: adding an entry there adds it to the command line.

    registered("training.modes", "MODES")    # -> {"paired": {"summary": "input -> target pairs ..."}, ...}
"""
import ast
import functools
import importlib.util
from pathlib import Path


@functools.lru_cache(maxsize=None)  # a registry does not change while vgan runs
def registered(module, variable):
    """{name: {keyword: constant}} of the dict literal `variable` in `module`'s source: its string
    keys, and the constant keyword arguments of each value that is a call (a dataclass entry)."""
    path = Path(importlib.util.find_spec(module).origin)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    assigned = {target.id: stmt.value for stmt in tree.body if isinstance(stmt, ast.Assign)
                for target in stmt.targets if isinstance(target, ast.Name)}
    node = assigned.get(variable)
    if not isinstance(node, ast.Dict):
        raise TypeError(f"{path}: {variable} is not a dict literal at module level")
    entries = {}
    for key, value in zip(node.keys, node.values):
        value = assigned.get(value.id, value) if isinstance(value, ast.Name) else value  # an entry defined above the dict
        constants = {kw.arg: kw.value.value for kw in getattr(value, "keywords", ()) if isinstance(kw.value, ast.Constant)}
        entries[ast.literal_eval(key)] = constants
    return entries
