"""Every registry has one pattern and one home: light records naming their code as "module:attr",
importable without torch; the command line offers exactly what is registered, no module outside a
registry branches on a mode's, a loss's or a metric's name, and a mode or a loss added in a test
alone trains, resumes bit for bit and compares."""
import ast
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

import main as vgan
from cli.train_flags import TRAIN_FLAGS
from conftest import REPO, TINY, make_video
from networks import losses, registry
from networks.registry import ADVERSARIAL_LOSSES, MODES, LossEntry, ModeEntry
from runfolder.checkpoint import OLD_RUN_DEFAULTS
from training import modes
from training.step import LossWeights, update_generator
from utils.registry import load

PACKAGES = ("commands", "experiments", "training", "inference", "cli", "runfolder", "compute", "datasets", "networks", "media",
            "utils", "bench")


def flag(dest):
    return next(f for f in TRAIN_FLAGS if f.dest == dest)


def test_the_command_line_offers_exactly_the_registered_modes_and_losses():
    assert tuple(flag("mode").options["choices"]) == tuple(MODES)
    assert tuple(flag("gan_loss").options["choices"]) == tuple(ADVERSARIAL_LOSSES)
    assert all(entry.summary in flag("mode").options["help"] for entry in MODES.values())


REGISTRY_MODULES = ["networks.registry", "networks", "metrics", "experiments.search", "cli.train_flags", "utils.registry"]
BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "numpy", "optuna"):
            raise ImportError(f"{name} may not be imported by a registry")
sys.meta_path.insert(0, NoTorch())
"""


def test_every_registry_imports_where_torch_cannot_be_imported():
    code = BLOCK_TORCH + "".join(f"import {module}\n" for module in REGISTRY_MODULES) + (
        "from networks.registry import *; from metrics import METRICS; from experiments.search import SAMPLERS, PRUNERS\n"
        "print(len(GENERATORS), len(MODES), len(ADVERSARIAL_LOSSES), len(METRICS), len(SAMPLERS), len(PRUNERS))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert all(int(n) > 1 for n in done.stdout.split())
    blocked = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import networks.losses"], cwd=REPO, capture_output=True, text=True)
    assert blocked.returncode != 0 and "may not be imported" in blocked.stderr  # the block itself works


def test_every_registered_reference_loads_what_its_registry_promises():
    from experiments.search import PRUNERS, SAMPLERS
    from metrics import METRICS

    assert all(isinstance(entry.load(), type) for table in (registry.GENERATORS, registry.DISCRIMINATORS) for entry in table.values())
    assert all(isinstance(entry.load(), modes.Mode) for entry in MODES.values())
    assert all(isinstance(entry.load(), losses.Adversarial) for entry in ADVERSARIAL_LOSSES.values() if entry.adversary)
    assert all(callable(load(getattr(metric, role))) for metric in METRICS.values() for role in ("windows", "stream") if getattr(metric, role))
    assert all(callable(entry.load()) for table in (SAMPLERS, PRUNERS) for entry in table.values())
    with pytest.raises(ValueError, match="not a module:attr"):
        load("networks.unet3d")


def mode_name_comparisons(source, names):
    """Lines where `source` compares something with a mode's name (alone or in a tuple, list or set)."""
    def is_name(node):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_name(item) for item in node.elts)
        return isinstance(node, ast.Constant) and node.value in names

    tree = ast.parse(source)
    compared = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare) and any(map(is_name, [node.left, *node.comparators]))]
    keyed = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Dict) and sum(map(is_name, filter(None, node.keys))) > 1]
    return compared + keyed


def test_no_module_but_the_registry_branches_on_a_mode_name():
    names = set(MODES)
    planted = 'if config["mode"] == "cycle":\n    pass\nunpaired = mode in ("cycle", "recycle")\nwords = {"paired": 1, "cycle": 2}[mode]\n'
    assert mode_name_comparisons(planted, names) == [1, 3, 4]  # the check sees each way of branching
    assert branching_outside("networks/registry.py", names) == {}


@pytest.mark.parametrize("kind", ["metric", "loss"])
def test_no_module_but_its_registry_branches_on_a_metric_or_a_loss_name(kind):
    # `if "jod" in metrics:` is how a list kept beside the registry starts; the registry's fields say it instead.
    from metrics import METRICS

    names, home = {"metric": (set(METRICS), "metrics/__init__.py"), "loss": (set(ADVERSARIAL_LOSSES), "networks/registry.py")}[kind]
    assert mode_name_comparisons('if "jod" in metrics or loss == "hinge":\n    pass\n', names) == [1]
    assert branching_outside(home, names) == {}


def branching_outside(home, names):
    """{file: lines} of every module but `home` that compares something with one of `names`."""
    files = [REPO / "main.py", *(path for package in PACKAGES for path in (REPO / package).glob("*.py"))]
    return {str(path.relative_to(REPO)): lines for path in files if path != REPO / home
            if (lines := mode_name_comparisons(path.read_text(encoding="utf-8"), names))}


def l1_alone_step(nets, x, y, weights, device, amp, guard, ranks=None, motion=None):
    """The toy mode's step: the generator pulled towards the target by L1, no discriminator."""
    l1 = (nets.generator(x).float() - y).abs().mean()
    return update_generator(nets, guard, {"g_l1": l1, "g_total": l1}, {})


def mean_abs_hinge(real, fake):
    return (real - 1).abs().mean(), (fake + 1).abs().mean()


@pytest.fixture
def toy_registries(monkeypatch):
    """A mode and an adversarial loss added as their registries' entries, and nowhere else (the
    command line, which reads the registries' source, is told of them as an entry there would)."""
    toy = dataclasses.replace(modes.PAIRED, discriminator=lambda build: None, new_train_step=lambda pool_size, seed, rank=0: l1_alone_step)
    monkeypatch.setattr(modes, "TOY", toy, raising=False)
    monkeypatch.setitem(MODES, "toy", ModeEntry("L1 alone", "training.modes:TOY"))
    monkeypatch.setattr(losses, "ABSOLUTE", losses.Adversarial(mean_abs_hinge, lambda fake: (fake - 1).abs().mean()), raising=False)
    monkeypatch.setitem(ADVERSARIAL_LOSSES, "absolute", LossEntry("|D - 1| and |D + 1|", "networks.losses:ABSOLUTE"))
    monkeypatch.setitem(flag("mode").options, "choices", (*MODES,))
    monkeypatch.setitem(flag("gan_loss").options, "choices", (*ADVERSARIAL_LOSSES,))


def weights_of(path):
    return torch.load(path, weights_only=True)


def same(a, b):
    flat_a, flat_b = torch.utils._pytree.tree_flatten(a)[0], torch.utils._pytree.tree_flatten(b)[0]
    return len(flat_a) == len(flat_b) and all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b))


@pytest.mark.parametrize("mode,gan_loss", [("toy", "dcgan"), ("paired", "absolute")])
def test_a_registered_toy_mode_and_loss_train_resume_bitwise_and_compare(tmp_path, tiny, toy_registries, monkeypatch, mode, gan_loss):
    monkeypatch.chdir(tmp_path)
    common = ["train", "--data", str(tiny), *TINY, "--mode", mode, "--gan-loss", gan_loss, "--seed", "4", "--amp", "off",
              "--memory-format", "contiguous", "--device", "cpu", "--lr", "3e-3"]
    assert vgan.main([*common, "--epochs", "2", "--name", "straight"]) == 0
    assert vgan.main([*common, "--epochs", "1", "--name", "split"]) == 0
    assert vgan.main(["train", "--name", "split", "--resume", "--epochs", "2"]) == 0
    a, b = (weights_of(tmp_path / "checkpoints" / name / "last.pt") for name in ("straight", "split"))
    assert a["config"]["mode"] == mode and a["config"]["gan_loss"] == gan_loss and a["step"] == b["step"] == 12
    has_d = mode != "toy"
    assert (a["discriminator"] is not None) == has_d
    for part in ("generator", "opt_g", *(("discriminator", "opt_d") if has_d else ())):
        assert same(a[part], b[part]), part
    records = [json.loads(line) for line in (tmp_path / "checkpoints" / "straight" / "metrics.jsonl").read_text().splitlines()]
    l1 = [r["val/l1"] for r in records if "val/l1" in r]
    assert l1[-1] < 0.9 * l1[0]  # it learned: validation L1 down by a tenth from the start in 12 steps (seed 4)
    video = make_video(tmp_path / "clip.mp4", size="32x32", seconds=1)
    assert vgan.main(["compare", "--video", str(video), "--checkpoint", "checkpoints/straight", "-o", "cmp.mp4"]) == 0
    scores = json.loads((tmp_path / "cmp.json").read_text())["scores"]
    assert scores["psnr"] > 0 and (tmp_path / "cmp.mp4").stat().st_size > 0


def test_a_run_saved_before_the_later_flags_existed_loads_and_resumes(tiny_run, tmp_path):
    """The old format made at test time: today's checkpoint without the flags added since."""
    import shutil

    work, experiment = tiny_run
    old = tmp_path / "checkpoints" / "old"
    shutil.copytree(experiment, old)
    state = weights_of(old / "last.pt")
    later = {*OLD_RUN_DEFAULTS, *LossWeights.before_they_existed()}
    state["config"] = {key: value for key, value in state["config"].items() if key not in later}
    assert "mode" not in state["config"] and "cycle" not in state["config"]
    torch.save(state, old / "last.pt")
    (old / "config.json").unlink()
    from training.trained_model import load_model

    model = load_model(old, torch.device("cpu"))
    assert model.state["config"]["mode"] == "paired" and not model.unpaired
    resumed = vgan.main(["train", "--checkpoints", str(tmp_path / "checkpoints"), "--name", "old", "--resume", "--epochs", "3"])
    assert resumed == 0
    again = weights_of(old / "last.pt")
    assert again["step"] > state["step"] and again["config"]["cycle"] == 10.0 and again["config"]["temporal"] == 0.0


PLANTED_METRIC = """
from metrics import HIGHER, METRICS, Metric
METRICS["planted"] = Metric("planted score", HIGHER, short="planted", shown=("tables", "progress"), digits=1)
from experiments.runs import GROUP_HEADER, RUN_HEADER, sort_keys
from training.modes import paired_line
assert "planted (best)" in RUN_HEADER and "planted" in GROUP_HEADER, RUN_HEADER
assert "planted" in sort_keys() and "best_planted" in sort_keys()
line = paired_line("step 0", {"val/l1": 0.1, "val/l1_identity": 0.2, "val/psnr": 20.0, "val/psnr_identity": 19.0,
                              "val/planted": 3.25, "val/planted_identity": 1.0})
assert line.endswith("planted 3.2 (identity 1.0)"), line
print("ok")
"""


def test_a_metric_added_to_the_registry_alone_gets_its_columns_sort_keys_and_progress_line():
    done = subprocess.run([sys.executable, "-c", PLANTED_METRIC], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
