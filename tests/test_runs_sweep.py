"""runs, sweep and the comparison page: tables from real and synthetic run folders, the grid, resuming
an interrupted sweep, and the significance logic."""
import json
import re
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from scipy import stats

from browser import inspect_page
from conftest import REPO, TINY, run_cli, spawn
from cli.train_flags import as_typed
from experiments.runs import group_rows, groups, run_rows, summarize
from experiments.stats import welch_t_test
from experiments.sweep import thread_share
from runfolder.lock import ExperimentLock, lock_is_live


# Significance --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_welch_t_test_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, rng.uniform(0.1, 2), int(rng.integers(2, 9)))
    b = rng.normal(rng.uniform(-2, 2), rng.uniform(0.1, 2), int(rng.integers(2, 9)))
    t, _, p = welch_t_test(list(a), list(b))
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(expected.statistic, rel=1e-9) and p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def fake_run(root, name, config, records, lock_owner=None, checkpoint=True):
    """A run folder as training leaves it. `lock_owner` "live" holds its lock (in this process), "dead"
    leaves the lock files of a run that was killed."""
    folder = root / name
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records))
    if checkpoint:
        (folder / "last.pt").write_bytes(b"weights")
        step = max([r["step"] for r in records if isinstance(r, dict)], default=0)
        (folder / "last.json").write_text(json.dumps({"step": step, "epoch": 1, "finished": True}))
    if lock_owner == "live":
        HELD.append(ExperimentLock(folder).acquire())
    elif lock_owner == "dead":
        (folder / "lock").write_text("")
        (folder / "lock.json").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": "gone"}))
    return folder


HELD = []  # locks held for fake live runs until the test session ends


def val(step, psnr, ssim=0.5, flicker=1.2, l1=0.1):
    return {"step": step, "epoch": step // 10, "val/psnr": psnr, "val/psnr_identity": 12.0, "val/ssim": ssim,
            "val/ssim_identity": 0.4, "val/masked_warp_error": 0.012 * flicker, "val/masked_warp_error_identity": 0.03,
            "val/masked_warp_error_target": 0.012, "val/tof": 0.3, "val/tof_identity": 0.5, "val/flicker": flicker,
            "val/flicker_identity": 2.5, "val/l1": l1, "val/l1_identity": 0.2}


def config(**flags):
    from cli.train_flags import default_flags

    return {**default_flags(), "name": "x", **flags}


def test_grouped_seeds_show_mean_deviation_and_significance(tmp_path):
    from cli.train_flags import default_flags

    for seed, (good, bad) in enumerate([(20.0, 17.0), (20.2, 17.1), (19.9, 16.8)]):
        fake_run(tmp_path, f"good_seed{seed}", config(seed=seed, lr=1e-3), [val(10, 15), val(20, good), {"step": 20, "event": "finished"}])
        fake_run(tmp_path, f"bad_seed{seed}", config(seed=seed, lr=1e-5), [val(20, bad), {"step": 20, "event": "finished"}])
    runs = [summarize(p, default_flags()) for p in sorted(tmp_path.iterdir())]
    by_name = {g["group"]: g for g in groups(runs)}
    assert by_name["good"]["n"] == 3 and by_name["good"]["psnr_mean"] == pytest.approx(20.0333, abs=1e-3)
    assert by_name["good"]["psnr_std"] == pytest.approx(np.std([20.0, 20.2, 19.9], ddof=1))
    assert by_name["good"]["verdict"] == "best"
    assert by_name["bad"]["verdict"].startswith("worse than good (p=")
    table = run_cli("runs", "--checkpoints", tmp_path, cwd=tmp_path)
    assert table.returncode == 0 and "20.03 ± 0.15" in table.stdout and "worse than good (p=" in table.stdout
    assert "validation frames" in table.stdout and "python main.py verdict" in table.stdout  # what the data is, and where the answer is


def test_groups_on_other_data_are_tested_against_the_best_on_their_own_data(tmp_path):
    # A sweep over two tasks: compress scores far under blur, as its held-out frames are harder.
    from cli.train_flags import default_flags

    for seed in range(3):
        for data, base in (("data/blur", 26.0), ("data/compress", 23.0)):
            for lr, gain in ((1e-3, 0.5), (1e-4, 0.0)):
                fake_run(tmp_path, f"{data[5:]}_lr{lr}_seed{seed}", config(seed=seed, lr=lr, data=data),
                         [val(20, base + gain + seed / 20), {"step": 20, "event": "finished"}])
    verdicts = {g["group"]: g["verdict"].split(" (")[0] for g in groups([summarize(p, default_flags()) for p in sorted(tmp_path.iterdir())])}
    assert verdicts == {"blur_lr0.001": "best", "blur_lr0.0001": "worse than lr0.001",  # named as the table shows it
                        "compress_lr0.001": "best", "compress_lr0.0001": "worse than lr0.001"}


def test_flags_that_differ_from_the_defaults_are_shown_as_typed(tmp_path):
    from cli.train_flags import default_flags

    fake_run(tmp_path, "x", config(spectral_norm=False, flip=True, lr=0.01), [val(20, 20.0)])
    shown = summarize(tmp_path / "x", default_flags())["flags"]
    assert as_typed(shown) == "--flip --lr 0.01 --no-spectral-norm"


def test_a_single_seed_that_scores_highest_is_not_the_reference(tmp_path):
    from cli.train_flags import default_flags

    for seed in range(2):
        fake_run(tmp_path, f"good_seed{seed}", config(seed=seed, lr=1e-3), [val(20, 20.0 + seed / 10)])
        fake_run(tmp_path, f"bad_seed{seed}", config(seed=seed, lr=1e-5), [val(20, 17.0 + seed / 10)])
    fake_run(tmp_path, "lucky_seed0", config(seed=0, lr=1e-2), [val(20, 21.0)])
    verdicts = {g["group"]: g["verdict"] for g in groups([summarize(p, default_flags()) for p in sorted(tmp_path.iterdir())])}
    assert verdicts["good"] == "best" and verdicts["bad"].startswith("worse than good")
    assert verdicts["lucky"] == "no difference from good (needs 2+ seeds each)"


def test_runs_select_filters_by_name_and_metric_picks_what_best_means(tmp_path):
    # Group "sharp" has the better PSNR, group "steady" the better SSIM.
    for seed in range(2):
        fake_run(tmp_path, f"sharp_seed{seed}", config(seed=seed, lr=1e-3), [val(20, 20.0 + seed / 10, ssim=0.50 + seed / 100)])
        fake_run(tmp_path, f"steady_seed{seed}", config(seed=seed, lr=1e-4), [val(20, 18.0 + seed / 10, ssim=0.70 + seed / 100)])
    for seed in range(2):
        fake_run(tmp_path, f"other_seed{seed}", config(seed=seed, lr=1e-2), [val(20, 25.0 + seed / 10)])
    report = lambda *args: json.loads(run_cli("runs", "--checkpoints", tmp_path, "--json", *args, cwd=tmp_path).stdout)  # noqa: E731
    selected = report("--select", "s*")
    assert sorted(r["name"] for r in selected["runs"]) == ["sharp_seed0", "sharp_seed1", "steady_seed0", "steady_seed1"]
    best = lambda groups: [g["group"] for g in groups if g.get("verdict") == "best"]  # noqa: E731
    assert best(selected["groups"]) == ["sharp"]
    assert best(report("--select", "s*", "--metric", "ssim")["groups"]) == ["steady"]
    assert best(report("--metric", "psnr")["groups"]) == ["other"]  # without --select, the best of all


def test_runs_table_survives_odd_folders(tmp_path):
    fake_run(tmp_path, "fresh", config(), [], checkpoint=False)  # no metrics yet
    fake_run(tmp_path, "corrupt", config(network="resnet"),
             [val(10, 14.0), '{"step": 20, "val/psnr": 1\n', "not json at all\n", val(30, 15.5), {"step": 30, "event": "finished"}])
    fake_run(tmp_path, "deleted", config(), [val(10, 13.0), {"step": 10, "event": "finished"}], checkpoint=False)
    fake_run(tmp_path, "failed", config(lr=10.0), [val(10, 9.0), {"step": 12, "event": "failed", "reason": "nan"}])
    fake_run(tmp_path, "killed", config(), [{"step": 0, "event": "started"}, val(10, 12.0)], lock_owner="dead")
    fake_run(tmp_path, "live", config(), [{"step": 0, "event": "started"}], lock_owner="live")
    fake_run(tmp_path, "noconfig", None, [val(5, 11.0)])
    (tmp_path / "not_a_run").mkdir()
    result = run_cli("runs", "--checkpoints", tmp_path, "--json", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    runs = {r["name"]: r for r in json.loads(result.stdout)["runs"]}
    assert sorted(runs) == ["corrupt", "deleted", "failed", "fresh", "killed", "live", "noconfig"]
    assert {n: r["status"] for n, r in runs.items()} == {"corrupt": "finished", "deleted": "finished", "failed": "failed",
                                                          "fresh": "new", "killed": "interrupted", "live": "running",
                                                          "noconfig": "interrupted"}
    assert runs["corrupt"]["psnr"] == 15.5 and runs["corrupt"]["best_psnr"] == 15.5 and runs["corrupt"]["network"] == "resnet"
    assert runs["deleted"]["checkpoint"] is False and runs["failed"]["flags"] == {"lr": 10.0}
    table = run_cli("runs", "--checkpoints", tmp_path, "--sort", "psnr", cwd=tmp_path)
    names = [line.split()[0] for line in table.stdout.splitlines()[2:9]]
    assert names[:5] == ["corrupt", "deleted", "killed", "noconfig", "failed"]  # best PSNR first, runs without scores last
    assert "finished (no last.pt)" in table.stdout


def test_runs_reads_two_hundred_runs_without_loading_weights(tmp_path):
    for i in range(200):
        fake_run(tmp_path, f"run{i:03d}", config(seed=i % 3, channels=8 + i // 3 % 5),
                 [val(s, 10 + i / 100 + s / 1000) for s in range(10, 200, 10)] + [{"step": 190, "event": "finished"}])
    check = (f"import sys; sys.argv = ['main.py', 'runs', '--checkpoints', {str(tmp_path)!r}, '--json']; import main; "
             f"code = main.main(sys.argv[1:]); assert code == 0 and 'torch' not in sys.modules, 'weights were loaded'")
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["runs"]) == 200 and len(report["groups"]) == 5  # 5 channel settings, seeds pooled


# Sweep -------------------------------------------------------------------------------------------

def sweep_names(stdout):
    return [line.split()[1] for line in stdout.splitlines() if re.match(r"\s+(new|done|resume|running)\s", line)]


def test_sweep_expands_the_grid_exactly_and_names_runs_stably(tmp_path, tiny):
    first = run_cli("sweep", "-net", "unet,resnet", "--gan-loss", "dcgan,none,lsgan", "--l1", "100", "--seeds", "2",
                    "--data", tiny, "--max-steps", "5", "--dry-run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    names = sweep_names(first.stdout)
    assert len(names) == len(set(names)) == 2 * 3 * 2
    assert names[0] == "tiny_network-unet_gan-loss-dcgan_l1-100_max-steps-5_seed0"
    assert names[-1] == "tiny_network-resnet_gan-loss-lsgan_l1-100_max-steps-5_seed1"
    assert first.stdout.count("python main.py train") == 12 and not (tmp_path / "checkpoints").exists()
    reordered = run_cli("sweep", "--max-steps", "5", "--data", tiny, "--seeds", "2", "--l1", "100", "--gan-loss",
                        "dcgan,none,lsgan", "-net", "unet,resnet", "--dry-run", cwd=tmp_path)
    assert sweep_names(reordered.stdout) == names
    bad = run_cli("sweep", "-net", "unet,transformer", "--dry-run", cwd=tmp_path)
    assert bad.returncode == 2 and "'transformer' is neither a built-in" in bad.stderr  # nor a FILE.py:Class


def test_swept_switches_set_both_ways_whatever_their_default(tmp_path, tiny):
    # --flip is off by default, --spectral-norm on: a point's train command must say each value it sweeps.
    listed = run_cli("sweep", "--flip", "on,off", "--spectral-norm", "on,off", "--data", tiny, "--dry-run", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    commands = [line for line in listed.stdout.splitlines() if "python main.py train" in line]
    assert len(commands) == 4
    for command in commands:
        flip, norm = re.search(r"flip-(on|off)_spectral-norm-(on|off)", command).groups()
        assert (" --flip " in command) == (flip == "on")
        assert (" --spectral-norm " in command, " --no-spectral-norm " in command) == (norm == "on", norm == "off")


def test_sweep_jobs_trains_points_at_once_each_with_its_log(tmp_path, tiny):
    result = run_cli("sweep", "--gan-loss", "dcgan,none", "--data", tiny, *TINY, "--max-steps", "3", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    names = sweep_names(result.stdout)
    logs = tmp_path / "checkpoints" / "sweep_logs"
    assert sorted(p.name for p in logs.iterdir()) == sorted(f"{name}.log" for name in names) and len(names) == 2
    for name in names:
        assert "finished 3 steps" in (logs / f"{name}.log").read_text()
    starts = [json.loads((tmp_path / "checkpoints" / name / "metrics.jsonl").read_text().splitlines()[0]) for name in names]
    assert [s["event"] for s in starts] == ["started", "started"]
    assert "all 2 runs finished" in result.stdout


def test_each_point_gets_a_share_of_the_cores_it_may_use_and_no_more_threads_than_the_user_set(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})  # taskset to 8 of the machine's cores
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [thread_share(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert [thread_share(n) for n in (1, 2, 8)] == [2, 2, 1]
    for unreadable in ("0", "four", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", unreadable)
        assert thread_share(2) == 4


def test_sweep_resumes_after_a_kill_without_repeating_finished_points(tmp_path, tiny):
    """The sweep is SIGKILLed once its second point has logged a training step (of 30), so that point
    is mid-run and the first one has finished."""
    args = ["sweep", "--gan-loss", "dcgan", "--seeds", "2", "--data", tiny, *TINY, "--max-steps", "30", "--log-every", "1"]
    root = tmp_path / "checkpoints"
    output = tmp_path / "sweep.log"  # a file, not a pipe: a pipe nobody drains would stall the training child
    with open(output, "w") as log:
        sweep = spawn([sys.executable, REPO / "main.py", *args], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    names = []
    deadline = time.time() + 300
    while len(names) < 2 and time.time() < deadline:
        names = [line.split()[1] for line in output.read_text().splitlines() if re.match(r"\s+new\s", line)]
        time.sleep(0.1)
    first, second = root / names[0], root / names[1]

    def started(folder):
        return (folder / "metrics.jsonl").exists() and '"loss/' in (folder / "metrics.jsonl").read_text()

    while not started(second) and time.time() < deadline:
        time.sleep(0.1)
    sweep.kill()  # the sweep dies at once; its running point gets SIGTERM, saves and exits
    sweep.wait()
    while lock_is_live(second) and time.time() < deadline:
        time.sleep(0.1)
    assert not lock_is_live(second), "the running point did not stop when the sweep died"
    events = lambda folder: [json.loads(l)["event"] for l in (folder / "metrics.jsonl").read_text().splitlines() if '"event"' in l]  # noqa: E731
    assert events(first) == ["started", "finished"] and events(second)[-1] == "interrupted"
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"done     {names[0]}" in again.stdout and f"resume   {names[1]}" in again.stdout
    assert events(first) == ["started", "finished"]  # not trained again
    assert events(second) == ["started", "interrupted", "resumed", "finished"]
    table = run_cli("runs", "--checkpoints", root, "--json", cwd=tmp_path)
    report = json.loads(table.stdout)
    assert {r["status"] for r in report["runs"]} == {"finished"} and {r["steps"] for r in report["runs"]} == {30}
    assert [g["n"] for g in report["groups"]] == [2]  # the two seeds of the one point

    page = root / "index.html"
    media, screenshot = inspect_page(page)
    assert media and all(m["ok"] for m in media), media
    assert "<script" not in page.read_text()
    pixels = cv2.imdecode(np.frombuffer(screenshot, np.uint8), cv2.IMREAD_COLOR)
    assert pixels.std() > 20 and (pixels < 250).mean() > 0.05


@pytest.mark.parametrize("low,high", [(13.27, 13.41), (0.015, 0.0184), (12.8, 13.4), (0, 600), (-0.7, 3.4), (1, 2)])
def test_chart_ticks_lie_in_the_range_and_no_two_labels_read_the_same(low, high):
    from experiments.html import _ticks, tick_label

    ticks = _ticks(low, high)
    labels = [tick_label(tick, ticks) for tick in ticks]
    assert len(ticks) >= 2 and all(low - 1e-12 <= t <= high + 1e-12 for t in ticks)
    assert len(set(labels)) == len(labels) and all(abs(float(label) - t) < (ticks[1] - ticks[0]) / 2 for label, t in zip(labels, ticks))


def test_the_flicker_ratio_is_judged_by_its_distance_from_one(tmp_path):
    # A blurry model flickers less than the footage itself (0.3); one as steady as the footage scores near 1.
    from cli.train_flags import default_flags
    from experiments.runs import sort_keys, sort_runs
    from experiments.search import Search, last_scores
    from metrics import best_of

    assert best_of("flicker", [0.3, 1.1, 2.5]) == 1.1
    for seed in range(3):
        fake_run(tmp_path, f"steady_seed{seed}", config(seed=seed, lr=1e-3), [val(20, 20.0, flicker=1.05 + seed / 100)])
        fake_run(tmp_path, f"blurry_seed{seed}", config(seed=seed, lr=1e-4), [val(20, 20.0, flicker=0.3 + seed / 100)])
    runs = [summarize(p, default_flags()) for p in sorted(tmp_path.iterdir())]
    verdicts = {g["group"]: g["verdict"] for g in groups(runs, "flicker")}
    assert verdicts["steady"] == "best" and verdicts["blurry"].startswith("worse than steady")
    assert [r["name"] for r in sort_runs(runs, *sort_keys()["flicker"])][:3] == ["steady_seed0", "steady_seed1", "steady_seed2"]
    # A search judged by flicker minimises the distance, so it prefers the steady trial.
    assert Search({}, 1, 20, objectives=("flicker",)).directions == ["minimize"]
    (steady,), (blurry,) = last_scores(tmp_path / "steady_seed0", ["flicker"]), last_scores(tmp_path / "blurry_seed0", ["flicker"])
    assert steady < blurry
    sorted_by_jod = run_cli("runs", "--checkpoints", tmp_path, "--sort", "jod", cwd=tmp_path)  # every validated score sorts
    assert sorted_by_jod.returncode == 0, sorted_by_jod.stderr


def test_tables_name_runs_and_groups_by_what_tells_them_apart(tmp_path):
    from cli.train_flags import default_flags

    for seed in range(2):
        for net, lr in (("unet", 1e-3), ("mine", 1e-4)):
            fake_run(tmp_path, f"bk_pool-5_batch-4_network-{net}_max-steps-150_seed{seed}", config(seed=seed, lr=lr), [val(20, 20.0)])
    runs = [summarize(p, default_flags()) for p in sorted(tmp_path.iterdir())]
    assert sorted(row[0] for row in run_rows(runs)) == ["network-mine_seed0", "network-mine_seed1", "network-unet_seed0",
                                                          "network-unet_seed1"]
    assert sorted(row[0] for row in group_rows(groups(runs))) == ["network-mine", "network-unet"]
    assert {r["name"] for r in runs} >= {"bk_pool-5_batch-4_network-unet_max-steps-150_seed0"}  # the folders keep their names
