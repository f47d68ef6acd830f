"""The verdict: its rule (experiments/verdict.py) checked against its own calibration on synthetic
groups and against independent computations; test footage held apart when a dataset is built; and
`verdict` end to end on a tiny dataset with test videos, its cache and its refusals."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats

from conftest import TINY, assert_user_error, leftovers, make_video, run_cli
from experiments.verdict import decide, holm, judge, minimum_detectable, power_of, probability_of_improvement, seeds_needed


def false_worse_rate(rule, groups, seeds, repeats, rng):
    """How often `rule` calls some group worse among `groups` identical groups of `seeds` seeds."""
    calls = 0
    for _ in range(repeats):
        scores = {f"g{i}": list(rng.normal(30.0, 0.2, seeds)) for i in range(groups)}
        calls += any(word.startswith("worse") for word in rule(scores).values())
    return calls / repeats


def against_the_best(scores):
    """The rule `runs` used before: the best mean, every other group tested against it with Welch's test at 0.05."""
    best = max(scores, key=lambda name: np.mean(scores[name]))
    return {name: "worse" if name != best and stats.ttest_ind(scores[name], scores[best], equal_var=False).pvalue < 0.05
            else "no difference" for name in scores}


def test_holm_rejects_in_step_down_order_and_stops_at_the_first_it_keeps():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops it (0.04 is kept although 0.04 < 0.05)
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([0.001, 0.002]) == [True, True] and holm([0.04, 0.03]) == [False, False]


@pytest.mark.parametrize("groups", [2, 4, 6])
def test_identical_groups_are_called_worse_at_most_alpha_of_the_time(groups):
    # 300 grids of identical groups: Holm over every pair holds the family-wise error at 5%; the
    # binomial's 99.9% bound over 300 draws at 5% is 0.094, so a rule at its nominal rate passes.
    rng = np.random.default_rng(groups)
    assert false_worse_rate(decide, groups, 3, 300, rng) <= 0.094
    if groups == 6:  # the old rule, on the same kind of grids, is far over: this test can fail
        assert false_worse_rate(against_the_best, groups, 3, 300, rng) > 0.12


def test_a_planted_difference_is_found_with_the_power_the_formula_gives():
    # One group 0.6 worse among 3, 5 seeds each, seed deviation 0.2: Holm over 3 pairs tests the
    # first p at 0.05/3, where the formula's power is a lower bound for the step-down procedure.
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(300):
        scores = {"a": rng.normal(30.0, 0.2, 5), "b": rng.normal(30.0, 0.2, 5), "handicapped": rng.normal(29.4, 0.2, 5)}
        found += decide(scores)["handicapped"].startswith("worse")
    assert found / 300 >= power_of(0.6, 0.2, 5, 0.05 / 3) - 0.08


def test_power_matches_a_simulated_welch_test_and_the_detectable_difference_inverts_it():
    rng = np.random.default_rng(3)
    hits = np.mean([stats.ttest_ind(rng.normal(0.5, 1.0, 4), rng.normal(0.0, 1.0, 4), equal_var=False).pvalue < 0.05
                    for _ in range(4000)])
    assert power_of(0.5, 1.0, 4, 0.05) == pytest.approx(hits, abs=0.02)  # other draws than these: the same power
    effect = minimum_detectable(1.0, 4, 0.05)
    assert power_of(effect, 1.0, 4, 0.05) == pytest.approx(0.8, abs=0.01)
    # Past the simulated range the noncentral t takes over; where both apply they agree.
    assert power_of(0.8, 1.0, 30, 0.05) == pytest.approx(stats.nct.sf(stats.t.ppf(0.975, 58), 58, 0.8 / np.sqrt(2 / 30))
                                                          + stats.nct.cdf(-stats.t.ppf(0.975, 58), 58, 0.8 / np.sqrt(2 / 30)), abs=0.01)
    seeds = seeds_needed(0.5, 1.0, 0.05)
    assert power_of(0.5, 1.0, seeds, 0.05) >= 0.8 > power_of(0.5, 1.0, seeds - 1, 0.05)


def test_probability_of_improvement_counts_every_pair_of_seeds_on_every_clip():
    a = np.array([[1.0, 5.0], [3.0, 5.0]])  # (seeds, clips)
    b = np.array([[2.0, 5.0], [0.0, 6.0]])
    # clip 0: (1>2 no, 1>0 yes, 3>2 yes, 3>0 yes) = 3/4; clip 1: (5=5 half, 5<6, 5=5 half, 5<6) = 1/4
    assert probability_of_improvement(a, b) == pytest.approx(0.5)
    assert probability_of_improvement(a, b, higher_is_better=False) == pytest.approx(0.5)
    assert probability_of_improvement(a[:, :1], b[:, :1], higher_is_better=False) == pytest.approx(0.25)


def test_clips_are_paired_so_their_difficulty_does_not_swamp_the_difference():
    # Clips differ by 10 dB; group "b" is 0.5 dB under "a" on every clip, seeds differ by about 0.1.
    rng = np.random.default_rng(0)
    clips = np.array([20.0, 30.0, 25.0])
    a = [list(clips + rng.normal(0, 0.1)) for _ in range(4)]
    b = [list(clips - 0.5 + rng.normal(0, 0.1)) for _ in range(4)]
    assert decide({"a": a, "b": b})["b"].startswith("worse than a")
    pooled = stats.ttest_ind(np.ravel(a), np.ravel(b), equal_var=False).pvalue  # every seed-clip as a sample of its own
    assert pooled > 0.5
    result = judge({"a": a, "b": b})
    low, high = result.pairs[0].interval
    assert low <= result.pairs[0].difference <= high and 0.3 < low and result.pairs[0].p_better == 1.0


def test_a_lower_is_better_metric_calls_the_higher_group_worse():
    words = decide({"steady": [0.10, 0.11, 0.09], "shaky": [0.30, 0.31, 0.29]}, higher_is_better=False)
    assert words["steady"] == "best" and words["shaky"].startswith("worse than steady")


# Test footage held apart when a dataset is built.

@pytest.fixture(scope="module")
def shot_video(tmp_path_factory):
    """Three shots of 2 s at 10 fps, each of other content: testsrc, mandelbrot, smptebars."""
    from media.process import ffmpeg_exe

    path = tmp_path_factory.mktemp("shots") / "three_shots.mp4"
    graph = "[1]trim=duration=2,setpts=PTS-STARTPTS[m];[0][m][2]concat=n=3:v=1[v]"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2",
                    "-f", "lavfi", "-i", "mandelbrot=size=64x48:rate=10", "-f", "lavfi", "-i", "smptebars=size=64x48:rate=10:duration=2",
                    "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def frame_keys(frames):
    return {frame.tobytes() for frame in frames}


def test_held_out_shots_reach_no_training_or_validation_window(tmp_path, shot_video):
    from datasets.slider import training_slider, validation_slider
    from datasets.store import load_dataset
    from datasets.test_part import test_clips

    result = run_cli("build-dataset", "--video", shot_video, "--pair", "blur", "--size", "32x24", "--test-shots", "1",
                     "--no-flow", "-o", tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dataset = load_dataset(tmp_path / "data")
    (clip,) = test_clips(tmp_path / "data", dataset.meta)
    assert clip.record["source_frames"] == [20, 40]  # the middle shot, found by ffmpeg's scene score
    assert [s["source_frames"] for s in dataset.meta["segments"]] == [[0, 20], [40, 60]]  # the rest, split around it
    test = frame_keys(clip.inputs) | frame_keys(clip.targets)
    served = set()
    for slider in (training_slider(dataset, 4, 1, 2), validation_slider(dataset, 2, 2, "data")):
        a, b = slider.gather(np.arange(slider.windows))
        served |= frame_keys(a.reshape(-1, *a.shape[2:])) | frame_keys(b.reshape(-1, *b.shape[2:]))
    assert served and not served & test
    assert not (frame_keys(dataset.a) | frame_keys(dataset.b)) & test  # not even stored beside them


def test_test_videos_keep_to_their_own_arrays_and_can_be_added_later(tmp_path, shot_video):
    from datasets.store import fingerprint, load_dataset
    from datasets.test_part import test_clips

    unseen = make_video(tmp_path / "unseen.mp4", source="testsrc2", size="64x48", rate=10, seconds=2)
    result = run_cli("build-dataset", "--video", shot_video, "--pair", "gray", "--size", "32x24", "--no-flow", "-o", tmp_path / "data",
                     cwd=tmp_path)
    assert result.returncode == 0 and "no test footage" in result.stdout
    before = fingerprint(tmp_path / "data")
    added = run_cli("build-dataset", "--add-test", tmp_path / "data", "--test", unseen, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert fingerprint(tmp_path / "data") == before  # the runs trained on it stay valid
    dataset = load_dataset(tmp_path / "data")
    (clip,) = test_clips(tmp_path / "data", dataset.meta)
    assert clip.name == "unseen" and len(clip.inputs) == 20 and (clip.inputs[..., 0] == clip.inputs[..., 1]).all()  # derived: gray
    again = run_cli("build-dataset", "--add-test", tmp_path / "data", "--test", unseen, cwd=tmp_path)
    assert_user_error(again, str(tmp_path / "data"), "already holds test footage", "--overwrite")


def test_unpaired_and_aligned_test_footage_is_kept_per_side_and_per_pair(tmp_path):
    from datasets.store import read_meta
    from datasets.test_part import test_clips

    day, night, test_day, test_night = (make_video(tmp_path / f"{n}.mp4", source=s, size="32x24", rate=10, seconds=1.5)
                                        for n, s in (("day", "testsrc2"), ("night", "smptebars"), ("tday", "testsrc"),
                                                     ("tnight", "rgbtestsrc")))
    result = run_cli("build-dataset", "--unpaired", "--a", day, "--b", night, "--test-a", test_day, "--test-b", test_night,
                     "--size", "32x24", "-o", tmp_path / "unpaired", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    meta = read_meta(tmp_path / "unpaired")
    assert [c.name for c in test_clips(tmp_path / "unpaired", meta, side="a")] == ["tday"]
    assert [c.name for c in test_clips(tmp_path / "unpaired", meta, side="b")] == ["tnight"]
    assert test_clips(tmp_path / "unpaired", meta)[0].targets is None
    paired = run_cli("build-dataset", "--a", day, "--b", night, "--test-a", test_day, "--test-b", test_night, "--size", "32x24",
                     "--no-flow", "-o", tmp_path / "paired", cwd=tmp_path)
    assert paired.returncode == 0, paired.stderr
    (clip,) = test_clips(tmp_path / "paired", read_meta(tmp_path / "paired"))
    assert clip.name == "tnight" and clip.targets is not None and not np.array_equal(clip.inputs, clip.targets)


def test_bad_test_footage_is_refused_before_anything_is_written(tmp_path, shot_video):
    short = make_video(tmp_path / "short.mp4", rate=10, seconds=0.5)  # 5 frames, under one clip of 9
    cases = [
        (["--video", shot_video, "--pair", "blur", "--test", short], [str(short), "shorter than one clip", "5 frames"]),
        (["--video", shot_video, "--pair", "blur", "--test", shot_video], [str(shot_video), "both training and test footage"]),
        (["--video", shot_video, "--pair", "blur", "--test-shots", "3"], [str(shot_video), "3 shots", "--test-shots 3"]),
    ]
    for flags, fragments in cases:
        result = run_cli("build-dataset", *flags, "--size", "32x24", "-o", tmp_path / "out", cwd=tmp_path)
        assert_user_error(result, *fragments)
        assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


# `verdict` end to end.

@pytest.fixture(scope="module")
def judged(tmp_path_factory, sample_video):
    """The sample at 16 x 16 (gray -> colour) with two test videos, and two structures, two seeds each, finished."""
    work = tmp_path_factory.mktemp("verdict")
    tests = [make_video(work / f"unseen{i}.mp4", source=s, size="32x32", rate=10, seconds=2.4) for i, s in enumerate(("testsrc2", "rgbtestsrc"))]
    built = run_cli("build-dataset", "--video", sample_video, "--pair", "gray", "--size", "16", "--fps", "5", "--test", *tests,
                    "-o", work / "data", cwd=work)
    assert built.returncode == 0, built.stderr
    for seed in (0, 1):
        for name, channels in (("narrow", "4"), ("wide", "8")):
            trained = run_cli("train", "--data", work / "data", *TINY, "--channels", channels, "--max-steps", "6", "--seed", str(seed),
                              "--name", f"{name}_seed{seed}", cwd=work)
            assert trained.returncode == 0, trained.stderr
    return work


def verdict_of(work, *flags):
    return run_cli("verdict", "--quiet", *flags, cwd=work)


def test_verdict_judges_every_seed_on_every_test_clip_and_scores_only_what_is_new(judged):
    work = judged
    first = verdict_of(work)
    assert first.returncode == 0, first.stderr
    assert "scored 8 run-clip pairs" in first.stdout and "0 from the cache" in first.stdout
    record = json.loads((work / "checkpoints" / "verdict" / "verdict.json").read_text())
    assert [c["name"] for c in record["clips"]] == ["unseen0", "unseen1"]
    psnr = record["metrics"]["psnr"]
    assert set(psnr["groups"]) == {"narrow", "wide"} and psnr["decided"] and psnr["comparisons"] == 2  # PSNR and JOD, one pair each
    assert np.array(psnr["groups"]["wide"]["seeds"]).shape == (2, 2)  # every seed on every clip
    words = sorted(g["word"] for g in psnr["groups"].values())
    assert words[0] == "best" and words[1].startswith(("no difference from", "worse than"))
    assert record["metrics"]["ssim"]["decided"] is False and "jod" in record["metrics"]
    assert record["sentence"].startswith("On 2 test clips no run trained on")
    page = (work / "checkpoints" / "verdict.html").read_text()
    assert "Every seed on every test clip" in page and "test PSNR (dB) against JOD (ColorVideoVDP)" in page and "GFLOP per clip" in page
    assert all((work / "checkpoints" / "verdict" / "images" / f"{g}_seed0" / "profile.png").exists() for g in ("narrow", "wide"))
    again = verdict_of(work, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["metrics"]["psnr"]["groups"] == psnr["groups"]
    # A run trained further since it was scored is scored again; the others come from the cache.
    resumed = run_cli("train", "--resume", "--name", "wide_seed1", "--max-steps", "8", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    third = verdict_of(work)
    assert "scored 2 run-clip pairs" in third.stdout and "6 from the cache" in third.stdout


def test_verdict_refuses_what_it_cannot_judge_in_one_line(judged, tmp_path):
    empty = verdict_of(tmp_path, "--checkpoints", tmp_path / "none")
    assert_user_error(empty, "holds no finished run")
    # Runs on a dataset with no test footage: the line says how to add it.
    shutil.copytree(judged / "checkpoints" / "narrow_seed0", tmp_path / "checkpoints" / "narrow_seed0")
    shutil.copytree(judged / "data", tmp_path / "data")
    (tmp_path / "data" / "test.json").unlink()
    config = tmp_path / "checkpoints" / "narrow_seed0" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "data": str(tmp_path / "data")}))
    missing = verdict_of(tmp_path)
    assert_user_error(missing, str(tmp_path / "data"), "no test footage", "--add-test")
    assert not (tmp_path / "checkpoints" / "verdict.html").exists()
    # Runs on two datasets.
    shutil.copytree(judged / "checkpoints" / "wide_seed0", tmp_path / "checkpoints" / "wide_seed0")
    mixed = verdict_of(tmp_path)
    assert_user_error(mixed, "different datasets", "--select")
    # Test clips shorter than a run's clips (as config.json says it trained: 16 frames against 12).
    long_clips = tmp_path / "long" / "checkpoints" / "wide_seed0"
    shutil.copytree(judged / "checkpoints" / "wide_seed0", long_clips)
    config = long_clips / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "pool": 16}))
    short = verdict_of(tmp_path / "long")
    assert_user_error(short, str(judged / "data" / "test.json"), "has 12 frames, fewer than the 16 of wide_seed0's clips")


def test_evaluate_on_the_test_split_scores_each_clip_as_the_verdict_does(judged, tmp_path):
    shutil.copytree(judged / "checkpoints" / "narrow_seed0", tmp_path / "checkpoints" / "narrow_seed0")
    result = run_cli("evaluate", "--checkpoint", tmp_path / "checkpoints" / "narrow_seed0", "--split", "test", "--amp", "off",
                     "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["split"] == "test" and [c["name"] for c in evaluation["clips"]] == ["unseen0", "unseen1"]
    frames = [c["frames"] for c in evaluation["clips"]]
    psnr = [c["scores"]["psnr"] for c in evaluation["clips"]]
    assert evaluation["scores"]["psnr"] == pytest.approx(np.dot(psnr, frames) / sum(frames))
    assert verdict_of(tmp_path, "--decide", "psnr").returncode == 0
    record = json.loads((tmp_path / "checkpoints" / "verdict" / "verdict.json").read_text())
    (group,) = record["metrics"]["psnr"]["groups"].values()
    assert group["seeds"] == [pytest.approx(psnr, abs=1e-9)]  # the same windows, the same scores
