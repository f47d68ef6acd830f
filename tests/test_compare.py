"""compare and evaluate: side-by-side videos, scores, streaming memory, and bad input."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, assert_user_error, build, encode_frames, leftovers, make_video, read_frames, run_cli, run_group
from datasets.slider import ClipSlider
from datasets.store import load_dataset
from training.trained_model import latest_experiment
from media.probe import probe
from media.process import ffmpeg_exe, has_filter
from utils.images import load_png
from metrics.scores import mean_psnr, ssim


@pytest.fixture(scope="module")
def clip2s(tmp_path_factory):
    """2 s of a moving test pattern at 25 fps, 64 x 48, with a sound track."""
    return make_video(tmp_path_factory.mktemp("v") / "in.mp4", extra=("-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", "-shortest"))


def compare(tiny_run, *args):
    work, experiment = tiny_run
    return run_cli("compare", "--checkpoint", experiment, *args, cwd=work)


def test_derived_pair_model_compares_against_the_video_itself(tiny_run, clip2s, tmp_path):
    out, generated = tmp_path / "cmp.mp4", tmp_path / "gen.mkv"
    result = compare(tiny_run, "--video", clip2s, "-o", out, "--save-generated", tmp_path / "gen.mp4")
    assert result.returncode == 0, result.stderr
    info, source = probe(out), probe(clip2s)
    assert (info.frames, info.fps) == (source.frames, source.fps) == (50, 25.0)
    assert info.width == 3 * info.height  # input | generated | target
    assert info.has_audio  # the input's sound track is copied in
    scores = json.loads(out.with_suffix(".json").read_text())["scores"]
    # An independent oracle: the scores of the saved generated video against the video itself, and of
    # the gray version taken as the answer (BT.601 luma, as the gray pair is documented).
    target = read_frames(clip2s, size=(16, 16))
    gray = np.repeat(np.rint(target @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1).astype(np.uint8)
    assert scores["psnr_identity"] == pytest.approx(mean_psnr(gray, target), abs=0.05)
    assert scores["ssim_identity"] == pytest.approx(ssim(gray, target).mean(), abs=0.01)
    assert scores["psnr"] == pytest.approx(mean_psnr(read_frames(tmp_path / "gen.mp4"), target), abs=0.5)  # H.264 at CRF 18
    assert 0 < scores["masked_warp_error"] < 3 and scores["masked_warp_error_target"] > 0
    assert scores["flicker"] == pytest.approx(scores["masked_warp_error"] / scores["masked_warp_error_target"])
    assert "PSNR (dB)" in result.stdout and "flicker ratio" in result.stdout and not generated.exists()
    # Windows of 4 frames every 2 (-pool 4, half of it shared): a frame belongs to the window centred
    # nearest, so the window switches at every odd frame from 3 on; each pair is scored once.
    summary = json.loads(out.with_suffix(".json").read_text())
    assert [pair[0] for pair in summary["pairs"]] == list(range(1, 50))
    assert [pair[0] for pair in summary["pairs"] if pair[3]] == list(range(3, 48, 2)) and scores["seam"] > 0
    profile = load_png(summary["profile"])  # an x-t slice: one image row per frame, enlarged
    assert profile is not None and (profile.shape[0] - 18) % 50 == 0 and profile.shape[0] > 50
    experiment = tiny_run[1]
    assert json.loads((experiment / "compare.json").read_text())["output"] == str(out)
    assert "compare on" in (experiment / "index.html").read_text()


def test_target_video_gives_three_panels_and_scores(tiny_run, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    a = encode_frames(frames, tmp_path / "a.mkv")
    b = encode_frames(255 - frames, tmp_path / "b.mkv")
    result = compare(tiny_run, "--video", a, "--target", b, "-o", tmp_path / "ab.mp4", "--overlap", "0", "--batch", "2")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "ab.json").read_text())["scores"]
    expected_identity = mean_psnr(read_frames(a, size=(16, 16)), read_frames(b, size=(16, 16)))
    assert scores["psnr_identity"] == pytest.approx(expected_identity, abs=1e-6)


def test_any_input_size_works_and_generated_frames_can_be_saved(tiny_run, tmp_path):
    odd = encode_frames(np.random.default_rng(1).integers(0, 256, (20, 30, 50, 3), dtype=np.uint8), tmp_path / "odd.mkv")
    result = compare(tiny_run, "--video", odd, "--size", "22x10", "-o", tmp_path / "odd.mp4", "--save-generated", tmp_path / "gen.mp4")
    assert result.returncode == 0, result.stderr
    generated = probe(tmp_path / "gen.mp4")
    assert generated.frames == 20 and (generated.width, generated.height) == (22, 10)


def test_video_shorter_than_one_window_is_padded(tiny_run, tmp_path):
    short = encode_frames(np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), tmp_path / "short.mkv")
    result = compare(tiny_run, "--video", short, "-o", tmp_path / "short.mp4")
    assert result.returncode == 0, result.stderr
    assert probe(tmp_path / "short.mp4").frames == 2


def test_vmaf_is_added_or_refused_in_one_line(tiny_run, clip2s, tmp_path):
    result = compare(tiny_run, "--video", clip2s, "-o", tmp_path / "v.mp4", "--vmaf")
    if has_filter("libvmaf"):  # the ffmpeg in the imageio-ffmpeg wheel has it
        assert result.returncode == 0, result.stderr
        assert 0 <= json.loads((tmp_path / "v.json").read_text())["scores"]["vmaf"] <= 100
    else:
        assert_user_error(result, "no libvmaf filter", "--vmaf")
        assert not (tmp_path / "v.mp4").exists()


def test_dry_run_writes_nothing(tiny_run, clip2s, tmp_path):
    result = compare(tiny_run, "--video", clip2s, "-o", tmp_path / "dry.mp4", "--dry-run")
    assert result.returncode == 0 and "dry run: generated a window of 4 frames at 16x16" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_most_recent_experiment_is_the_default(tiny_run, clip2s, tmp_path):
    work, experiment = tiny_run
    root = tmp_path / "checkpoints"
    for name, age in (("older", 100), ("newer", 10), ("oldest", 1000)):
        shutil.copytree(experiment, root / name)
        stamp = time.time() - age
        os.utime(root / name / "last.pt", (stamp, stamp))
    assert latest_experiment(root) == root / "newer"
    result = run_cli("compare", "--video", clip2s, "-o", tmp_path / "d.mp4", cwd=tmp_path)
    assert result.returncode == 0 and "checkpoints/newer/last.pt" in result.stdout


def test_output_folder_is_created_and_own_output_replaced(tiny_run, clip2s, tmp_path):
    out = tmp_path / "new" / "deeper" / "c.mp4"
    assert compare(tiny_run, "--video", clip2s, "-o", out).returncode == 0
    assert compare(tiny_run, "--video", clip2s, "-o", out).returncode == 0  # its own earlier output
    assert leftovers(out.parent) == []


def test_compare_never_writes_over_its_own_input(tiny_run, clip2s, tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(clip2s.read_bytes())
    for extra in ([], ["--overwrite"]):
        assert_user_error(compare(tiny_run, "--video", video, "-o", video, *extra), video, "is one of the inputs")
    assert_user_error(compare(tiny_run, "--video", video, "-o", tmp_path / "c.mp4", "--save-generated", video, "--overwrite"),
                      video, "is one of the inputs")
    assert video.read_bytes() == clip2s.read_bytes()


def test_existing_file_that_is_not_ours_is_kept_without_overwrite(tiny_run, clip2s, tmp_path):
    precious = tmp_path / "holiday.mp4"
    precious.write_bytes(clip2s.read_bytes())
    assert_user_error(compare(tiny_run, "--video", clip2s, "-o", precious), precious, "--overwrite")
    assert precious.read_bytes() == clip2s.read_bytes()
    assert compare(tiny_run, "--video", clip2s, "-o", precious, "--overwrite").returncode == 0


@pytest.mark.parametrize("problem", ["missing", "not_a_checkpoint"])
def test_bad_checkpoint_is_refused(tiny_run, clip2s, tmp_path, problem):
    path = tmp_path / "model.pt"
    if problem == "not_a_checkpoint":
        path.write_text("not a checkpoint")
    result = run_cli("compare", "--video", clip2s, "--checkpoint", path, "-o", tmp_path / "x.mp4", cwd=tmp_path)
    assert_user_error(result, path, "no such checkpoint" if problem == "missing" else "damaged")
    assert not (tmp_path / "x.mp4").exists()


def test_target_of_another_length_or_size_is_refused(tiny_run, clip2s, tmp_path):
    longer = make_video(tmp_path / "long.mp4", seconds=3)
    assert_user_error(compare(tiny_run, "--video", clip2s, "--target", longer, "-o", tmp_path / "x.mp4"), longer, "has 75 frames")
    bigger = make_video(tmp_path / "big.mp4", size="96x48")
    assert_user_error(compare(tiny_run, "--video", clip2s, "--target", bigger, "-o", tmp_path / "x.mp4"), bigger, "96x48")
    assert not (tmp_path / "x.mp4").exists()


def test_unwritable_output_is_refused(tiny_run, clip2s, tmp_path):
    target = "/sys/vgan-test/c.mp4" if os.geteuid() == 0 else str(tmp_path / "locked" / "c.mp4")
    if os.geteuid() != 0:
        (tmp_path / "locked").mkdir(mode=0o555)
    assert_user_error(compare(tiny_run, "--video", clip2s, "-o", target), target)


def test_overlap_must_be_below_the_window(tiny_run, clip2s, tmp_path):
    result = compare(tiny_run, "--video", clip2s, "-o", tmp_path / "x.mp4", "--overlap", "4")
    assert result.returncode == 2 and "--overlap: must be below the window of 4 frames" in result.stderr


def test_memory_does_not_grow_with_the_video_length(tiny_run, tmp_path):
    """Peak resident memory of compare on a 6x longer video stays within 1.5x, and grows by far
    less than holding the longer video's frames would take. Both measured runs do the same work
    but for the length: the precision, layout and memory budget are given, and the forward pass's
    cost is measured beforehand into a cache of the test's own (what another test measured, or
    the memory another process holds, would otherwise decide whether a run probes and how it plans)."""
    fixed = ["--size", "128", "--overlap", "0", "--amp", "off", "--memory-format", "contiguous", "--max-memory", "4G"]
    env = {**os.environ, "VGAN_CACHE_DIR": str(tmp_path / "cache")}
    peaks = {}
    for seconds in (1, 4, 24):  # the first only fills the cache
        video = make_video(tmp_path / f"v{seconds}.mp4", size="128x128", seconds=seconds)
        wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
        cmd = [sys.executable, "-c", wrapper, sys.executable, str(REPO / "main.py"), "compare", "--checkpoint", str(tiny_run[1]),
               "--video", str(video), *fixed, "-o", str(tmp_path / f"c{seconds}.mp4")]
        done = run_group(cmd, timeout=600, env=env)
        assert done.returncode == 0, done.stderr
        peaks[seconds] = int(done.stdout.split()[-1])
    assert probe(tmp_path / "c24.mp4").frames == 600
    held = 600 * 128 * 128 * 3 * 6  # input, generated and target frames, and the 3-panel frame
    assert peaks[24] <= 1.5 * peaks[4], peaks
    assert peaks[24] - peaks[4] < held / 2, peaks  # holding the frames is 177 MB; the 6x longer run grew by 3 to 13 MB


def test_the_temporal_profile_keeps_its_rows_not_the_chunks_they_came_from():
    # A row sliced from a chunk is a view that keeps the chunk's whole frames alive: a compare of
    # 720p video held gigabytes until its end that way.
    from inference.compare import TemporalProfile
    from inference.sliding import Chunk

    profile = TemporalProfile(None)
    frames = [np.zeros((8, 32, 48, 3), np.uint8) for _ in range(3)]
    profile.add(Chunk(*frames, switched=False))
    assert all(not np.shares_memory(row, chunk) for row, chunk in zip(profile.rows[0], frames))
    assert [row.shape for row in profile.rows[0]] == [(8, 48, 3)] * 3


def test_evaluate_scores_validation_windows_next_to_identity(tiny_run, tiny):
    work, experiment = tiny_run
    result = run_cli("evaluate", "--checkpoint", experiment, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ds = load_dataset(tiny)
    slider = ClipSlider(ds.a, ds.b, ds.ranges("val"), 4, 4, 4, shuffle=False)
    windows = slider.starts[:, None] + np.arange(4)
    assert report["windows"] == len(slider.starts) and report["frames"] == windows.size
    assert report["scores"]["psnr_identity"] == pytest.approx(mean_psnr(ds.a[windows.ravel()], ds.b[windows.ravel()]))
    assert {"psnr", "ssim", "masked_warp_error", "tof", "flicker", "l1"} <= set(report["scores"])
    assert "seam" not in report["scores"]  # windows are scored on their own: no switches
    assert json.loads((experiment / "evaluation.json").read_text()) == report
    table = run_cli("evaluate", "--checkpoint", experiment, cwd=work)
    assert "generated" in table.stdout and "identity" in table.stdout and "SSIM" in table.stdout


def test_evaluate_data_scores_another_dataset(tiny_run, sample_video, tmp_path):
    work, experiment = tiny_run
    other = build(tmp_path / "blurred", sample_video, "blur", 16, fps=5)
    result = run_cli("evaluate", "--checkpoint", experiment, "--data", other, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ds = load_dataset(other)
    start, stop = ds.ranges("val")[0]
    windows = np.arange(start, stop - 3, 4)[:, None] + np.arange(4)  # the validation part in whole windows of -pool 4
    assert report["data"] == str(other) and report["frames"] == windows.size
    assert report["scores"]["psnr_identity"] == pytest.approx(mean_psnr(ds.a[windows.ravel()], ds.b[windows.ravel()]))


def test_vgan_video_comment_marks_our_outputs(tiny_run, clip2s, tmp_path):
    assert compare(tiny_run, "--video", clip2s, "-o", tmp_path / "c.mp4").returncode == 0
    assert probe(tmp_path / "c.mp4").comment.startswith("made by vgan compare")
    assert probe(clip2s).comment == "" and ffmpeg_exe()


def sound_seconds(path, rate=8000):
    """How long a file's sound track lasts: its samples, decoded by ffmpeg, over their rate."""
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", str(rate),
                           "-"], capture_output=True, timeout=60, check=True)
    return len(done.stdout) / 2 / rate


@pytest.mark.parametrize("sound", ["ends first", "ends after"])
def test_every_frame_is_kept_and_the_sound_ends_with_the_video_whatever_its_length(tiny_run, tmp_path, sound):
    """20 frames (0.80 s) whose sound ends 10-20 ms before the video (as `-frames:v 20 -c:a copy` often
    leaves it) or 2 s after it: the output has the 20 frames, with sound for as long as they last."""
    seconds = 0.78 if sound == "ends first" else 2.8
    video = make_video(tmp_path / "clip.mp4", seconds=0.8, extra=("-f", "lavfi", "-i", f"sine=d={seconds}", "-c:a", "aac"))
    assert (sound_seconds(video) < 0.8) if sound == "ends first" else (sound_seconds(video) > 2.0)
    assert probe(video).frames == 20
    # split and build-dataset count the frames as the video has them, not as the sound lasts
    assert "wrote 20 frames" in run_cli("split", video, "-o", tmp_path / "frames", cwd=tmp_path).stdout
    assert len(list((tmp_path / "frames").iterdir())) == 20
    built = run_cli("build-dataset", "--video", video, "--pair", "gray", "--size", "16", "-o", tmp_path / "d", cwd=tmp_path)
    assert built.returncode == 0 and json.loads((tmp_path / "d" / "meta.json").read_text())["frames"] == 20, built.stderr
    out = tmp_path / "cmp.mp4"
    result = compare(tiny_run, "--video", video, "-o", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.with_suffix(".json").read_text())["frames"] == probe(out).frames == 20
    assert probe(out).has_audio
    assert sound_seconds(out) == pytest.approx(0.8, abs=0.03)  # padded with silence, or cut, at the last frame
