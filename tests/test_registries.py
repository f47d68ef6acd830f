"""Modes and adversarial losses each have one home, their registry: the command line offers exactly
what is registered, no module outside training/modes.py branches on a mode's name, and a mode or a
loss added in a test alone trains, resumes bit for bit and compares."""
import ast
import dataclasses
import json

import pytest
import torch

import main as vgan
from cli.train_flags import GAN_LOSSES, TRAIN_FLAGS
from conftest import REPO, TINY, make_video
from networks import losses
from runfolder.checkpoint import OLD_RUN_DEFAULTS
from training import modes
from training.step import LossWeights, update_generator
from utils.registry import registered

PACKAGES = ("commands", "experiments", "training", "inference", "cli", "runfolder", "compute", "datasets", "networks", "media",
            "utils", "bench")


def flag(dest):
    return next(f for f in TRAIN_FLAGS if f.dest == dest)


def test_the_command_line_offers_exactly_the_registered_modes_and_losses():
    assert tuple(flag("mode").options["choices"]) == tuple(modes.MODES)
    assert tuple(flag("gan_loss").options["choices"]) == GAN_LOSSES == tuple(losses.ADVERSARIAL_LOSSES)
    assert all(entry.summary in flag("mode").options["help"] for entry in modes.MODES.values())


def test_a_registry_entry_is_read_from_source_without_importing_it(tmp_path, monkeypatch):
    (tmp_path / "planted_registry.py").write_text('import not_a_module_anyone_has\n'
                                                  'ZERO = replace(ONE, summary="nothing")\n'
                                                  'THINGS = {"one": Thing(summary="the first"), "two": None, "zero": ZERO}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registered("planted_registry", "THINGS") == {"one": {"summary": "the first"}, "two": {}, "zero": {"summary": "nothing"}}


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
    names = set(modes.MODES)
    planted = 'if config["mode"] == "cycle":\n    pass\nunpaired = mode in ("cycle", "recycle")\nwords = {"paired": 1, "cycle": 2}[mode]\n'
    assert mode_name_comparisons(planted, names) == [1, 3, 4]  # the check sees each way of branching
    assert branching_outside("training/modes.py", names) == {}


@pytest.mark.parametrize("kind", ["metric", "loss"])
def test_no_module_but_its_registry_branches_on_a_metric_or_a_loss_name(kind):
    # `if "jod" in metrics:` is how a list kept beside the registry starts; the registry's fields say it instead.
    from metrics import METRICS
    from networks.losses import ADVERSARIAL_LOSSES

    names, home = {"metric": (set(METRICS), "metrics/__init__.py"), "loss": (set(ADVERSARIAL_LOSSES), "networks/losses.py")}[kind]
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
    toy = dataclasses.replace(modes.MODES["paired"], summary="L1 alone", discriminator=lambda build: None,
                              new_train_step=lambda pool_size, seed, rank=0: l1_alone_step)
    monkeypatch.setitem(modes.MODES, "toy", toy)
    monkeypatch.setitem(losses.ADVERSARIAL_LOSSES, "absolute", losses.Adversarial(mean_abs_hinge, lambda fake: (fake - 1).abs().mean()))
    monkeypatch.setitem(flag("mode").options, "choices", (*modes.MODES,))
    monkeypatch.setitem(flag("gan_loss").options, "choices", (*losses.ADVERSARIAL_LOSSES,))


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
