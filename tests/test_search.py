"""sweep --search: a hyperparameter search per structure on Optuna, here and on Dask; its space's
refusals; pruning a trial that is clearly behind; a driver killed mid-search that, started again,
repeats no finished trial and completes the study; the best-of-k curve against a direct count."""
import itertools
import json
import os
import signal
import sys

import numpy as np
import pytest

from cli.train_flags import TRAIN_FLAGS
from conftest import REPO, TINY, assert_user_error, kill_group, run_cli, spawn
from experiments.search import expected_best_of, parse_space
from runfolder.checkpoint import HOLD_WRITE_ENV
from runfolder.events import events, run_status
from runfolder.metrics import read_metrics
from runfolder.verdicts import DRIVER_SILENCE_S, PRUNED, SILENT
from test_faults import wait_for
from utils.errors import UserError

FLAGS = {flag.dest: flag for flag in TRAIN_FLAGS}
FAST = [*TINY, "--amp", "off", "--memory-format", "contiguous", "-batch", "2"]


def write_space(path, body):
    path.write_text("[space]\n" + body)
    return path


@pytest.mark.parametrize("body,words", [
    ('sharpness = { low = 1, high = 2 }', "'sharpness' is not a train flag"),
    ('lr = { low = 1e-2, high = 1e-3, log = true }', "'lr' has an empty range"),
    ('lr = { low = 0.0, high = 1e-3, log = true }', "'lr' is log-uniform from 0.0"),
    ('data = ["data/a", "data/b"]', "'data' cannot be searched"),
    ('name = ["a"]', "'name' cannot be searched"),
    ('gan_loss = []', "'gan_loss' has no choices"),
])
def test_a_space_a_search_cannot_use_is_refused_naming_the_key(tmp_path, tiny, body, words):
    import tomllib

    with pytest.raises(UserError, match=words):
        parse_space(tomllib.loads("[space]\n" + body)["space"], FLAGS, "grid.toml")
    space = write_space(tmp_path / "grid.toml", body)
    refused = run_cli("sweep", "--config", space, "--data", tiny, "--max-steps", "4", "--search", "2", *FAST, cwd=tmp_path)
    assert_user_error(refused, str(space), words)  # naming the file, as every other error does
    assert not (tmp_path / "checkpoints").exists()  # before any trial started


def test_a_pruner_s_settings_scale_with_the_trials_budget():
    from experiments.search import DEFAULT_PRUNER, PRUNERS, Search

    median = PRUNERS[DEFAULT_PRUNER].build(Search({}, trials=8, max_steps=300))
    assert (median._n_startup_trials, median._n_warmup_steps) == (2, 150)  # half of 300 steps
    assert PRUNERS[DEFAULT_PRUNER].build(Search({}, trials=8, max_steps=100))._n_warmup_steps == 50
    halving = PRUNERS["halving"].build(Search({}, trials=8, max_steps=300))
    assert (halving._min_resource, halving._reduction_factor) == (75, 3)
    assert PRUNERS["hyperband"].build(Search({}, trials=8, max_steps=300))._max_resource == 300


def test_the_expected_best_of_k_is_the_mean_best_over_every_draw():
    scores = [0.3, 1.0, 0.7, 0.2]
    for k in (1, 2, 3):
        draws = list(itertools.product(scores, repeat=k))  # every draw of k trials, with replacement, equally likely
        assert expected_best_of(scores, [k])[0] == pytest.approx(np.mean([max(d) for d in draws]))
        assert expected_best_of(scores, [k], higher=False)[0] == pytest.approx(np.mean([min(d) for d in draws]))


def sampler_seed_giving(first, then):
    """A random sampler's seed whose first two draws of lr from [1e-3, 1e-7] are `first`, then `then`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in range(100):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        draws = [study.ask().suggest_categorical("lr", [1e-3, 1e-7]) for _ in range(2)]
        if draws == [first, then]:
            return seed
    raise AssertionError("no seed")


def test_a_trial_waits_at_a_validation_for_the_verdict_on_that_step(tmp_path):
    """The driver may look at a trial late; the trial then waits, so it is judged where it stands.
    A verdict on an earlier step is not the one it waits for, and a stop signal ends the wait."""
    import threading

    from runfolder.verdicts import VerdictGate

    driver = VerdictGate.open(tmp_path, "trial")
    trial = VerdictGate.of(tmp_path / "trial")
    assert VerdictGate.of(tmp_path / "another") is None and driver.waiting() is None
    driver.tell(12, stop=True)  # stale: about a step the trial is not at
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(trial.stop_at(24, interrupted=lambda: False)))
    waiter.start()
    wait_for(lambda: driver.waiting() == 24, timeout=60, what="the trial waiting at step 24")
    assert waiter.is_alive() and not answers  # it waits however long the driver takes
    driver.tell(24, stop=True)
    waiter.join(timeout=60)
    assert answers == [PRUNED] and driver.waiting() is None
    assert trial.stop_at(36, interrupted=lambda: True) is None  # Ctrl-C: the loop's own stop follows
    assert VerdictGate.open(tmp_path, "trial").waiting() is None  # a restarted driver judges afresh


def test_a_trial_gives_up_waiting_when_its_driver_falls_silent(tmp_path):
    """A driver that beats keeps its trial waiting however long it takes; one that stops beating (killed
    where no signal reaches the trial, as on Dask) is given up after the silence, on the trial's clock."""
    from runfolder.verdicts import VerdictGate

    driver = VerdictGate.open(tmp_path, "trial")
    trial = VerdictGate.of(tmp_path / "trial")
    now = [0.0]

    def sleep(seconds):  # a fake clock: the test decides when time passes (a second a look), not the machine
        now[0] += 1.0
        if now[0] < 600:
            driver.beat()  # alive for ten minutes, twice the silence the trial allows

    trial.clock, trial.sleep = lambda: now[0], sleep
    assert trial.stop_at(24, interrupted=lambda: False) == SILENT
    assert 600 + DRIVER_SILENCE_S <= now[0] <= 600 + DRIVER_SILENCE_S + 2


def summary_of(root):
    return json.loads((root / "search" / "summary.json").read_text())


def test_a_search_prunes_a_trial_clearly_behind_and_trains_the_best_again_in_the_finals(tmp_path, tiny):
    space = write_space(tmp_path / "grid.toml", "lr = [1e-3, 1e-7]\n")
    seed = sampler_seed_giving(1e-3, 1e-7)  # the good trial first: the bad one is then behind it at every validation
    # Two trials: the default pruner waits for two before it judges; successive halving judges the second.
    result = run_cli("sweep", "--config", space, "--data", tiny, "--max-steps", "24", "--search", "2", "--sampler", "random",
                     "--search-seed", seed, "--finals", "2", "--prune", "halving", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "checkpoints"
    entry = summary_of(root)["structures"]["unet"]
    status = {row["params"]["lr"]: row["status"] for row in entry["rows"]}
    assert status == {1e-3: "complete", 1e-7: "pruned"}
    assert 0 < entry["saved_steps"] < 24 and entry["best"]["params"] == {"lr": 1e-3}
    pruned = next(row["run"] for row in entry["rows"] if row["status"] == "pruned")
    assert run_status(root / pruned) == "pruned" and any(e["event"] == "interrupted" for e in events(root / pruned))  # it saved
    listed = json.loads(run_cli("runs", "--json", cwd=tmp_path).stdout)
    statuses = {run["name"]: run["status"] for run in listed["runs"]}
    assert statuses[pruned] == "pruned"
    finals = sorted(name for name in statuses if "_final_" in name)
    assert finals == ["tiny_final_unet_seed1", "tiny_final_unet_seed2"] and all(statuses[name] == "finished" for name in finals)
    assert all(json.loads((root / name / "config.json").read_text())["lr"] == 1e-3 for name in finals)  # the best, again
    # The finals are one seed group, without the trial that won: it was chosen for scoring best, and would flatter them.
    assert any(sorted(g["runs"]) == finals for g in listed["groups"])
    page = (root / "index.html").read_text()
    assert "expected best PSNR (dB) of k trials" in page and "pruned" in page


def test_a_driver_killed_mid_search_is_started_again_and_repeats_no_finished_trial(tmp_path, tiny):
    space = write_space(tmp_path / "grid.toml", "lr = { low = 5e-4, high = 2e-3, log = true }\n")
    root = tmp_path / "checkpoints"
    command = [sys.executable, REPO / "main.py", "sweep", "--config", space, "--data", tiny, "--max-steps", "12",
               "--prune", "none", *FAST]
    first = run_cli(*command[2:], "--search", "1", cwd=tmp_path)  # trial 0, finished
    assert first.returncode == 0, first.stderr
    trial_0 = next(root.glob("*_t000"))
    finished_log = (trial_0 / "metrics.jsonl").read_bytes()
    # The study asked for 3 trials: trial 1 starts, and its first checkpoint write is held (the writer's
    # test hook) while the driver is killed; its training child then saves on the SIGTERM it gets.
    gate, held = tmp_path / "hold", tmp_path / "hold.held"
    gate.touch()
    driver = spawn([*command, "--search", "3"], cwd=tmp_path, env={**os.environ, HOLD_WRITE_ENV: str(gate)},
                   stdout=open(tmp_path / "driver.log", "w"), stderr=open(tmp_path / "driver.err", "w"))
    wait_for(held.exists, timeout=120, what="trial 1's first checkpoint write, held")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    gate.unlink()
    trial_1 = next(root.glob("*_t001"))
    wait_for(lambda: run_status(trial_1) != "running", timeout=120, what="trial 1 saved and stopped")
    kill_group(driver)
    again = run_cli(*command[2:], "--search", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{trial_1.name} resumes" in again.stdout
    rows = summary_of(root)["structures"]["unet"]["rows"]
    assert sorted(row["number"] for row in rows) == [0, 1, 2] and all(row["status"] == "complete" for row in rows)
    assert (trial_0 / "metrics.jsonl").read_bytes() == finished_log  # never trained again
    assert [e["event"] for e in events(trial_1)][-2:] == ["resumed", "finished"]


def test_a_search_runs_its_trials_on_a_local_dask_cluster(tmp_path, tiny):
    space = write_space(tmp_path / "grid.toml", "l1 = { low = 10.0, high = 200.0, log = true }\n")
    result = run_cli("sweep", "--config", space, "--data", tiny, "--max-steps", "6", "--search", "2", "--dask", "local",
                     "--jobs", "2", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = summary_of(tmp_path / "checkpoints")["structures"]["unet"]["rows"]
    assert len(rows) == 2 and all(row["status"] in ("complete", "pruned") for row in rows)
    assert len({row["params"]["l1"] for row in rows}) == 2


BRITTLE = '''
import torch.nn as nn


class Brittle(nn.Module):
    """A clip-to-clip network that refuses some of its arguments, as a plug-in under development might."""

    def __init__(self, width: int = 4):
        super().__init__()
        if width > 4:
            raise ValueError(f"width {width} is not supported yet")
        self.body = nn.Sequential(nn.Conv3d(3, width, 1), nn.ReLU(), nn.Conv3d(width, 3, 1))

    def forward(self, x):
        return (x + self.body(x)).clamp(-1, 1)
'''


def test_a_trial_that_fails_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path, tiny):
    (tmp_path / "brittle.py").write_text(BRITTLE)
    space = write_space(tmp_path / "grid.toml", "[space.net_args]\nwidth = [8]\n")
    result = run_cli("sweep", "--config", space, "-net", "brittle.py:Brittle", "--data", tiny, "--max-steps", "4", "--search", "2",
                     *FAST, cwd=tmp_path)
    rows = summary_of(tmp_path / "checkpoints")["structures"]["brittle.py:Brittle"]["rows"]
    assert [row["status"] for row in rows] == ["fail", "fail"]  # the second trial ran after the first failed
    assert all("raised ValueError: width 8 is not supported yet" in row["reason"] for row in rows)
    assert "no trial finished" in result.stdout
    # A structure with no finished trial is no verdict: the search fails, naming it and why.
    assert result.returncode == 1
    assert "error: brittle.py:Brittle: no trial finished" in result.stderr and "width 8 is not supported yet" in result.stderr


def test_a_search_over_a_built_in_and_a_plug_in_with_its_arguments_trains_both(tmp_path, tiny):
    # --net-arg is the plug-in's: the U-Net takes flags, and trains as it is, as in a grid sweep.
    space = write_space(tmp_path / "grid.toml", "lr = [1e-3]\n[space.net_args]\nblocks = [1]\n")
    plugin = f"{REPO / 'examples' / 'factorised.py'}:Factorised"
    result = run_cli("sweep", "--config", space, "-net", f"unet,{plugin}", "--net-arg", "width=4", "--data", tiny,
                     "--max-steps", "4", "--search", "1", "--prune", "none", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    structures = summary_of(tmp_path / "checkpoints")["structures"]
    assert {name: [row["status"] for row in entry["rows"]] for name, entry in structures.items()} == {
        "unet": ["complete"], plugin: ["complete"]}
    assert structures["unet"]["rows"][0]["params"] == {"lr": 1e-3}  # the plug-in's [space.net_args] is not the U-Net's
    configs = {name: json.loads((tmp_path / "checkpoints" / entry["rows"][0]["run"] / "config.json").read_text())
               for name, entry in structures.items()}
    assert configs[plugin]["net_args"] == {"width": 4, "blocks": 1} and not configs["unet"].get("net_args")


def test_a_search_judged_by_a_score_some_validations_skip_never_waits_for_it(tmp_path, tiny):
    # JOD is scored at every second validation (--perceptual-every 2): the first has none. The trial
    # waits at its gate after that validation; the driver answers it "go" instead of waiting forever.
    space = write_space(tmp_path / "grid.toml", "lr = [1e-3]\n")
    result = run_cli("sweep", "--config", space, "--data", tiny, "--max-steps", "30", "--search", "1", "--objective", "jod",
                     *FAST, "--perceptual-every", "2", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    (row,) = summary_of(tmp_path / "checkpoints")["structures"]["unet"]["rows"]
    assert row["status"] == "complete" and row["values"][0] > 0
    validations = [r for r in read_metrics(tmp_path / "checkpoints" / row["run"]) if "val/l1" in r]
    assert any("val/jod" not in v for v in validations) and "val/jod" in validations[-1]
