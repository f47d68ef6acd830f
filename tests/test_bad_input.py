"""Bad input to split and build-dataset: one line `error: <path>: ...`, exit code 2, nothing half-written."""
import os
import subprocess

import numpy as np
import pytest

from conftest import assert_user_error, encode_frames, leftovers, make_video, run_cli
from media.process import ffmpeg_exe


@pytest.fixture
def work(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path


def refused_everywhere(work, video, *fragments):
    """Both commands that read a video refuse it the same way and write nothing."""
    split = run_cli("split", video, "-o", work / "out" / "frames", cwd=work)
    assert_user_error(split, video, *fragments)
    build = run_cli("build-dataset", "--video", video, "--pair", "gray", "-o", work / "out" / "data", cwd=work)
    assert_user_error(build, video, *fragments)
    assert list((work / "out").iterdir()) == []


def test_missing_path(work):
    refused_everywhere(work, work / "nope.mp4", "no such file")


def test_zero_byte_file(work):
    (work / "empty.mp4").write_bytes(b"")
    refused_everywhere(work, work / "empty.mp4", "empty (0 bytes)")


def test_text_file_named_mp4(work):
    (work / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    refused_everywhere(work, work / "notes.mp4", "not a video ffmpeg can read")


def test_random_bytes_named_mp4(work):
    (work / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    refused_everywhere(work, work / "noise.mp4")


def test_audio_only_file(work):
    audio = work / "tone.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(audio)], check=True)
    refused_everywhere(work, audio, "no video stream (audio only)")


def test_truncated_file_is_decoded_as_far_as_it_goes(work):
    whole = make_video(work / "whole.mp4", seconds=4, extra=("-movflags", "+faststart"))
    cut = work / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    result = run_cli("split", cut, "-o", work / "out" / "frames", cwd=work)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    written = len(list((work / "out" / "frames").iterdir()))
    assert 0 < written < 100
    assert f"warning: {cut}: damaged or truncated: wrote {written} frames (about 100 expected)" in result.stderr


def test_dataset_too_short_to_train_on(work, clip):
    from datasets.slider import ClipSlider
    from conftest import build
    from datasets.store import load_dataset
    from utils.errors import DatasetError

    build(work / "d", clip, "gray", 8, fps=5)
    ds = load_dataset(work / "d")
    with pytest.raises(DatasetError, match=r"have 9 frames.*-pool 16") as caught:
        ClipSlider(ds.a, ds.b, ds.ranges("train"), clip_frames=16, source=ds.path)
    assert caught.value.path == str(work / "d")


def test_a_and_b_with_different_frame_counts(work, clip):
    short = make_video(work / "short.mp4", seconds=1)
    result = run_cli("build-dataset", "--a", clip, "--b", short, "-o", work / "out" / "d", cwd=work)
    assert_user_error(result, clip, "has 50 frames", "has 25", "--trim")
    assert list((work / "out").iterdir()) == []
    trimmed = run_cli("build-dataset", "--a", clip, "--b", short, "-o", work / "out" / "d", "--trim", cwd=work)
    assert trimmed.returncode == 0 and "25 frames" in trimmed.stdout


def test_odd_dimensions(work):
    odd = encode_frames(np.random.default_rng(0).integers(0, 256, (50, 17, 33, 3), dtype=np.uint8), work / "odd.mkv")
    result = run_cli("split", odd, "-o", work / "out" / "frames", "--format", "png", cwd=work)
    assert result.returncode == 0 and "(33x17, png)" in result.stdout
    built = run_cli("build-dataset", "--video", odd, "--pair", "blur", "--size", "33x17", "-o", work / "out" / "d", cwd=work)
    assert built.returncode == 0 and "50 frames of 33x17" in built.stdout


def test_rotation_metadata_comes_out_upright(work, clip):
    rotated = work / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-display_rotation", "270", "-i", str(clip), "-c", "copy", str(rotated)], check=True)
    result = run_cli("split", rotated, "-o", work / "out" / "frames", "--fps", 5, cwd=work)
    assert result.returncode == 0 and "(48x64, jpg)" in result.stdout


def test_variable_frame_rate_with_fps_gives_exact_count(work):
    vfr = work / "vfr.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=32x32:r=7:d=2", "-f", "lavfi", "-i",
                    "testsrc2=s=32x32:r=24:d=1", "-filter_complex", "[0][1]concat=n=2", "-fps_mode", "vfr", "-c:v", "ffv1", str(vfr)],
                   check=True)
    result = run_cli("build-dataset", "--video", vfr, "--pair", "gray", "--fps", 10, "-o", work / "out" / "d", cwd=work)
    assert result.returncode == 0 and "30 frames of 64x64" in result.stdout


def test_file_names_with_shell_characters_are_taken_literally(work, clip):
    name = work / "my clip 'one' \"two\"; touch HACKED; $(touch HACKED2) `touch HACKED3`.mp4"
    name.write_bytes(clip.read_bytes())
    out = work / "out" / "frames; $(touch HACKED4) 'x'"
    result = run_cli("split", name, "-o", out, "--fps", 5, cwd=work)
    assert result.returncode == 0, result.stderr
    assert len(list(out.iterdir())) == 10
    built = run_cli("build-dataset", "--video", name, "--pair", "edges", "-o", work / "out" / "d $(touch HACKED5)", cwd=work)
    assert built.returncode == 0, built.stderr
    everything = [p.name for p in work.rglob("*")]
    assert not [n for n in everything if n.startswith("HACKED")]


def test_unwritable_output_folder(work, clip):
    if os.geteuid() == 0:
        target = "/sys/vgan-test-output"  # sysfs refuses new files even to root
    else:
        locked = work / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "frames"
    result = run_cli("split", clip, "-o", target, cwd=work)
    assert_user_error(result, target, "choose another")
    assert not os.path.exists(target)
    result = run_cli("build-dataset", "--video", clip, "--pair", "gray", "-o", target, cwd=work)
    assert_user_error(result, target)


def test_dataset_that_would_not_fit_in_memory(work, sample_video):
    out = work / "out" / "big"
    limited = {"VGAN_MEMORY_LIMIT": "2M"}
    result = run_cli("build-dataset", "--video", sample_video, "--pair", "gray", "--size", 128, "-o", out, cwd=work, env=limited)
    line = assert_user_error(result, out, "needs 54.1 MB in memory", "--mmap", "smaller --size")  # 300 frames of 128x128: 3+3+5 bytes a pixel
    assert "2.1 MB is available" in line
    assert list((work / "out").iterdir()) == []
    result = run_cli("build-dataset", "--video", sample_video, "--pair", "gray", "--size", 128, "-o", out, "--mmap", cwd=work, env=limited)
    assert result.returncode == 0 and "300 frames of 128x128" in result.stdout


def test_non_empty_output_is_not_replaced_without_overwrite(work, clip):
    target = work / "out" / "frames"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    assert_user_error(run_cli("split", clip, "-o", target, cwd=work), target, "--overwrite")
    assert (target / "mine.txt").read_text() == "keep me"
    assert run_cli("split", clip, "-o", target, "--overwrite", cwd=work).returncode == 0
    assert sorted(p.name for p in target.iterdir())[:2] == ["000001.jpg", "000002.jpg"]
    assert leftovers(work / "out") == []


@pytest.mark.parametrize("args", [["--pair", "gray"], ["--video", "v.mp4"], ["--video", "v.mp4", "--pair", "sepia"],
                                  ["--a", "a.mp4"], ["--a", "a.mp4", "--b", "b.mp4", "--video", "v.mp4", "--pair", "gray"],
                                  ["--video", "v.mp4", "--pair", "future:0"], ["--video", "v.mp4", "--pair", "gray", "--size", "0"],
                                  ["--video", "v.mp4", "--pair", "gray", "--val-fraction", "1.5"]])
def test_bad_flag_combinations_are_usage_errors(work, args):
    result = run_cli("build-dataset", *args, cwd=work)
    assert result.returncode == 2 and "usage:" in result.stderr and "Traceback" not in result.stderr
