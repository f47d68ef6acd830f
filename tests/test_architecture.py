"""The shape of the code: imports only go down the layers, functions stay short where the logic
lives, and the command line starts without torch or OpenCV."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

# Top to bottom; a package may import from the packages below it, never from one above.
LAYERS = ["commands", "cli", "experiments", "training", "inference", "datasets", "networks", "utils"]
PEERS = {"datasets": {"networks"}, "networks": {"datasets"}}  # side by side: neither imports the other
MAX_FUNCTION_LINES = 60
SHORT_FUNCTIONS_IN = ("training", "inference", "datasets")


def project_imports(path):
    """The project packages a module imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in LAYERS}
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_only_go_down_the_layers(package):
    allowed = set(LAYERS[LAYERS.index(package):]) - PEERS.get(package, set())
    wrong = {str(path.relative_to(REPO)): sorted(project_imports(path) - allowed) for path in (REPO / package).glob("*.py")}
    assert {path: bad for path, bad in wrong.items() if bad} == {}


def test_networks_import_nothing_but_torch():
    for path in (REPO / "networks").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert modules <= {"torch", "networks", "math", "dataclasses"}, (path.name, modules)


@pytest.mark.parametrize("package", SHORT_FUNCTIONS_IN)
def test_functions_are_short_where_the_logic_lives(package):
    long = []
    for path in (REPO / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_help_imports_neither_torch_nor_opencv():
    check = ("import sys, main; main.build_parser(); heavy = [m for m in ('torch', 'cv2', 'numpy') if m in sys.modules]; "
             "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([sys.executable, str(REPO / "main.py"), "-h"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "build-dataset" in shown.stdout and "sweep" in shown.stdout
