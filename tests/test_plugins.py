"""A network from the user's own file: it trains, resumes bit for bit, compares, evaluates, runs in
tiles and sweeps with seed groups with no edit to vgan; an edited file is refused; bad files are
one line each; inspect-network measures what the structure's arithmetic says."""
import json
import shutil

import pytest
import torch

from conftest import REPO, assert_user_error, run_cli

EXAMPLE = REPO / "examples" / "factorised.py"
SMALL = ["--net-arg", "width=4", "--net-arg", "blocks=1"]  # the example, as small as it goes
CLIPS = ["-pool", "5", "--step", "2", "--batch", "2", "--d-channels", "4", "--d-layers", "2"]


@pytest.fixture(scope="module")
def plugin_runs(tmp_path_factory, tiny):
    """A copy of the example in the user's own folder, trained straight for 6 steps and as 3 + 3 resumed."""
    work = tmp_path_factory.mktemp("plugin")
    (work / "nets").mkdir()
    shutil.copy(EXAMPLE, work / "nets" / "my_nets.py")
    net = ["-net", "nets/my_nets.py:Factorised", *SMALL, "--data", tiny, *CLIPS, "--seed", "1", "--epochs", "1"]
    for name, steps in (("straight", 6), ("split", 3)):
        done = run_cli("train", *net, "--max-steps", steps, "--name", name, cwd=work)
        assert done.returncode == 0, done.stderr
    resumed = run_cli("train", "--name", "split", "--resume", "--max-steps", "6", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    return work


def checkpoint(work, name):
    return torch.load(work / "checkpoints" / name / "last.pt", weights_only=True)


def test_a_network_from_your_own_file_trains_and_resumes_bit_for_bit(plugin_runs):
    a, b = checkpoint(plugin_runs, "straight"), checkpoint(plugin_runs, "split")
    assert a["step"] == b["step"] == 6
    for part in ("generator", "discriminator", "opt_g"):
        flat_a, flat_b = torch.utils._pytree.tree_flatten(a[part])[0], torch.utils._pytree.tree_flatten(b[part])[0]
        assert all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b))
    assert a["config"]["net_args"] == {"width": 4, "blocks": 1}  # typed by the constructor's annotations
    assert a["model_args"] == {"width": 4, "blocks": 1, "residual": False}
    record = a["sources"]["generator"]
    source = plugin_runs / "nets" / "my_nets.py"
    assert record["file"] == str(source.resolve()) and record["class"] == "Factorised"
    import hashlib

    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    copies = list((plugin_runs / "checkpoints" / "straight" / "network_source").iterdir())
    assert [c.read_bytes() for c in copies] == [source.read_bytes()]  # kept for the record, never imported


def test_compare_imports_the_recorded_file_only_while_its_hash_matches(plugin_runs, sample_video, tmp_path):
    work, run = plugin_runs, plugin_runs / "checkpoints" / "straight"
    compare = ["compare", "--video", sample_video, "--checkpoint", run, "-o", tmp_path / "out.mp4", "--quiet"]
    assert run_cli(*compare, cwd=work).returncode == 0
    evaluate = run_cli("evaluate", "--checkpoint", run, "--quiet", cwd=work)
    assert evaluate.returncode == 0, evaluate.stderr
    moved = tmp_path / "elsewhere.py"
    shutil.copy(work / "nets" / "my_nets.py", moved)
    source = work / "nets" / "my_nets.py"
    original = source.read_text()
    was = checkpoint(work, "straight")["sources"]["generator"]["sha256"][:16]
    try:
        source.write_text(original + "\n# an edit\n")
        line = assert_user_error(run_cli(*compare, cwd=work), source.resolve(), "has changed", was)
        import hashlib

        assert hashlib.sha256(source.read_bytes()).hexdigest()[:16] in line  # both hashes
        assert_user_error(run_cli("train", "--name", "straight", "--resume", "--max-steps", "8", cwd=work), "has changed")
        assert run_cli(*compare, "--network-source", moved, cwd=work).returncode == 0  # the original, moved
        anyway = run_cli(*compare, "--allow-changed-network", cwd=work)
        assert anyway.returncode == 0 and "warning:" in anyway.stderr and "--allow-changed-network" in anyway.stderr
        source.unlink()
        assert_user_error(run_cli(*compare, cwd=work), source.resolve(), "not there", "--network-source")
    finally:
        source.write_text(original)


def test_a_plug_in_runs_in_tiles_as_in_whole_frames(plugin_runs, sample_video, tmp_path):
    from conftest import read_frames

    run = plugin_runs / "checkpoints" / "straight"
    outputs = {}
    for name, tiles in (("whole", []), ("tiled", ["--tile", "16"])):
        outputs[name] = tmp_path / f"{name}.mkv"
        done = run_cli("compare", "--video", sample_video, "--checkpoint", run, "--size", "48", "-o", tmp_path / f"{name}.mp4",
                       "--save-generated", outputs[name], *tiles, "--quiet", "--memory-format", "contiguous", "--amp", "off",
                       cwd=plugin_runs)  # one way of computing for both: auto may time them apart, and tiles alone must differ
        assert done.returncode == 0, done.stderr
        assert ("tiles of 16x16" in done.stdout) == bool(tiles)
    from metrics.scores import mean_psnr

    assert mean_psnr(read_frames(outputs["tiled"]), read_frames(outputs["whole"])) >= 45.0


def test_a_sweep_puts_a_plug_in_against_the_u_net_in_seed_groups(tiny, tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "my_nets.py")
    grid = ["-net", "unet,my_nets.py:Factorised", *SMALL, "--channels", "4", "--depth", "2", "--data", tiny, *CLIPS,
            "--max-steps", "2", "--seeds", "2", "--checkpoints", tmp_path / "sweep"]
    done = run_cli("sweep", *grid, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = run_cli("runs", "--checkpoints", tmp_path / "sweep", "--json", cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    table = json.loads(runs.stdout)
    networks = sorted(r["network"] for r in table["runs"])
    assert networks == ["my_nets.py:Factorised"] * 2 + ["unet"] * 2
    assert sorted(g["n"] for g in table["groups"]) == [2, 2]  # one group per network, its two seeds pooled
    verdicts = sorted(g["verdict"] for g in table["groups"])  # the verdict's rule between the two groups
    assert verdicts[0] == "best" and verdicts[1].startswith(("no difference from", "worse than"))


def write_plugin(folder, body):
    path = folder / "bad_nets.py"
    path.write_text("import torch\nfrom torch import nn\n\n" + body)
    return path


BAD_FILES = {
    "missing class": ("class Other(nn.Module):\n    pass\n", "Net", [], "has no class Net"),
    "not a module": ("class Net:\n    pass\n", "Net", [], "Net is not a torch.nn.Module"),
    "import raises": ("x = 1\nundefined_name\n", "Net", [], "importing it raised NameError"),
    "argument not taken": ("class Net(nn.Module):\n    def __init__(self, width: int = 4):\n        super().__init__()\n"
                           "        self.c = nn.Conv3d(3, 3, 1)\n    def forward(self, x):\n        return torch.tanh(self.c(x))\n",
                           "Net", ["--net-arg", "depth=3"], "Net takes no argument 'depth' (it takes width)"),
    "wrong shape": ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.c = nn.Conv3d(3, 6, 1)\n"
                    "    def forward(self, x):\n        return torch.tanh(self.c(x))\n", "Net", [], "returns (1, 6, 5, 16, 16)"),
    "wrong range": ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.c = nn.Conv3d(3, 3, 1)\n"
                    "    def forward(self, x):\n        return 5 * x + self.c(x)\n", "Net", [], "a clip in [-1, 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_network_file_is_one_line_and_nothing_is_written(tiny, tmp_path, case):
    body, cls, extra, fragment = BAD_FILES[case]
    path = write_plugin(tmp_path, body)
    result = run_cli("train", "-net", f"{path}:{cls}", *extra, "--data", tiny, *CLIPS, "--max-steps", "1", cwd=tmp_path)
    line = assert_user_error(result, path, fragment)
    if case == "import raises":
        assert "(line 5)" in line
    assert not (tmp_path / "checkpoints").exists()


def test_a_network_file_that_does_not_exist_is_one_line(tiny, tmp_path):
    assert_user_error(run_cli("train", "-net", "nowhere.py:Net", "--data", tiny, cwd=tmp_path), "nowhere.py", "no such file")
    assert_user_error(run_cli("train", "-net", "no_such_package.nets:Net", "--data", tiny, cwd=tmp_path),
                      "no_such_package.nets", "no module of that name")


def test_train_help_lists_a_plug_in_s_arguments_without_importing_it(tmp_path):
    path = write_plugin(tmp_path, "raise SystemExit('imported')\n\nclass Net(nn.Module):\n"
                                  "    def __init__(self, width: int = 16, dilation=2, *, gate: bool = False):\n        super().__init__()\n")
    shown = run_cli("train", "-net", f"{path}:Net", "-h", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "--net-arg width=16   (int)" in shown.stdout and "--net-arg dilation=2" in shown.stdout
    assert "--net-arg gate=False   (bool)" in shown.stdout


def test_a_plug_in_trains_under_torchrun_with_its_ranks_in_step(tiny, tmp_path):
    import os
    import sys

    from conftest import run_group
    from runfolder.metrics import read_metrics

    shutil.copy(EXAMPLE, tmp_path / "my_nets.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(REPO / "main.py"), "train",
           "-net", "my_nets.py:Factorised", *SMALL, "--data", str(tiny), *CLIPS, "--max-steps", "2", "--name", "ddp", "--device", "cpu"]
    done = run_group(cmd, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    finished = [r for r in read_metrics(tmp_path / "checkpoints" / "ddp") if r.get("event") == "finished"]
    assert finished and finished[0]["world_size"] == 2 and finished[0]["ranks_agree"] is True


def test_a_network_in_an_importable_package_works_as_a_file_does(tmp_path):
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, tmp_path / "mypackage" / "nets.py")
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}"}
    shown = run_cli("inspect-network", "-net", "mypackage.nets:Factorised", *SMALL, "-pool", "3", "--size", "16", "--no-timing",
                    cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "receptive field in time        9 frames (4 either way)" in shown.stdout  # one block: 2 x 2 frames
