"""The shape of the code: imports only go down the layers, each idea has one home (the run folder's
file names, its torch), functions stay short where the logic lives, and the command line starts
without torch or OpenCV."""
import ast
import re
import subprocess
import sys

import pytest

from conftest import REPO

# Top to bottom; a package may import from the packages below it, never from one above.
LAYERS = ["commands", "experiments", "training", "inference", "cli", "runfolder", "compute", "datasets", "networks", "media",
          "metrics", "utils"]
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


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return modules | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_of_the_run_folder_only_its_checkpoint_module_imports_torch():
    """So that `runs`, `sweep` and the pages, which read run folders, never load torch."""
    importers = sorted(path.name for path in (REPO / "runfolder").glob("*.py") if "torch" in imported_modules(path))
    assert importers == ["checkpoint.py"]


# The experiment folder's file names, and the patterns of its numbered files, as code would spell them.
RUN_FOLDER_NAMES = {"config.json", "last.pt", "metrics.jsonl", "samples", "lock", "lock.json", "index.html", "index_files",
                    "sweep_logs", "compare.json", "evaluation.json"}
NUMBERED = re.compile(r"^(epoch_|clip_)")


def spelled_names(path):
    """(line, text) of every string in a module's code (docstrings aside) that is a run folder's file
    name, or starts a numbered one (an f-string's "epoch_{n:04d}.pt"); prose, with spaces, aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.strip("/")
            if " " not in text and (text in RUN_FOLDER_NAMES or NUMBERED.match(text)):
                found.append((node.lineno, node.value))
    return found


def test_no_file_name_of_the_experiment_folder_is_spelled_outside_the_run_folder_package():
    modules = [REPO / "main.py", *(path for package in LAYERS if package != "runfolder" for path in (REPO / package).glob("*.py"))]
    spelled = {str(path.relative_to(REPO)): names for path in modules if (names := spelled_names(path))}
    assert spelled == {}


def test_the_name_check_finds_a_spelled_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Writes last.pt."""\nimport os\nos.path.join(d, "last.pt")\nf"epoch_{n:04d}.pt"\nprint("see last.pt")\n')
    assert [line for line, _ in spelled_names(module)] == [3, 4]


def test_only_the_media_package_talks_to_ffmpeg():
    """Only media names ffmpeg: the sample video is a graph of lavfi filters built with media's ffmpeg_graph."""
    talkers = sorted(str(path.relative_to(REPO)) for package in LAYERS if package != "media" for path in (REPO / package).glob("*.py")
                     if "ffmpeg" in imported_modules(path) or "imageio_ffmpeg" in imported_modules(path))
    assert talkers == []


def test_precision_lives_in_the_compute_package():
    """Autocast and the grad scaler are set up once, in compute/; the rest of vgan asks it."""
    spelled = sorted(f"{path.relative_to(REPO)}: {word}" for package in LAYERS if package != "compute"
                     for path in (REPO / package).glob("*.py") for word in ("torch.autocast", "GradScaler(", "amp_dtype")
                     if word in path.read_text(encoding="utf-8"))
    assert spelled == []


def test_a_network_s_flags_are_declared_only_beside_its_class():
    """No module but the network's own spells its flags (the train flags, the networks' arguments,
    the resume rules and `runs` all read the declaration)."""
    from networks import DISCRIMINATORS, GENERATORS, NetworkSpec
    from networks.declared import declared

    homes = {}  # flag -> the files of the networks that declare it
    for registry in (GENERATORS, DISCRIMINATORS):
        for name, entry in registry.items():
            for hyper in declared(NetworkSpec.parse(name, registry)):
                homes.setdefault(hyper.flag, set()).add(REPO / (entry.code.split(":")[0].replace(".", "/") + ".py"))
    assert {"--depth", "--blocks", "--d-channels", "--spectral-norm"} <= set(homes)
    spelled = []
    for path in (path for package in LAYERS for path in (REPO / package).glob("*.py")):
        constants = {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        spelled += [(path.name, flag) for flag in constants & set(homes) if path not in homes[flag]]
    assert spelled == []


def test_networks_import_nothing_but_torch_and_the_error_type():
    """The networks, their registry and the plug-in loader: torch, the standard library's import
    machinery, and the one error type a user's mistake raises."""
    allowed = {"torch", "networks", "math", "dataclasses", "ast", "functools", "importlib", "inspect", "hashlib", "sys",
               "traceback", "pathlib", "utils"}
    for path in (REPO / "networks").glob("*.py"):
        modules = imported_modules(path)
        assert modules <= allowed, (path.name, modules)


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
