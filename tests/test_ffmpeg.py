"""Real ffmpeg round trips: probing, decoding, encoding, frame folders, rotation and variable frame rate."""
import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import encode_frames, leftovers, make_video, read_frames
from media import process
from media.decode import iter_frames
from media.encode import write_video
from media.probe import probe
from media.process import ffmpeg_exe
from utils.errors import VideoError


def random_frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_probe_reports_exact_frame_count_size_and_rate(tmp_path):
    video = make_video(tmp_path / "v.mp4", size="80x48", rate=30, seconds=3)
    info = probe(video)
    assert (info.width, info.height, info.frames, info.fps) == (80, 48, 90, 30.0)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert info.has_video and not info.has_audio and info.rotation == 0


def test_read_frames_gives_every_frame(clip):
    frames = read_frames(clip)
    assert frames.shape == (50, 48, 64, 3) and frames.dtype == np.uint8


def test_lossless_video_decodes_to_exactly_the_frames_written(tmp_path):
    frames = random_frames(12, 30, 40)
    for name, codec in [("v.mkv", ("-c:v", "ffv1", "-pix_fmt", "bgr0")), ("v.mov", ("-c:v", "png", "-pix_fmt", "rgb24"))]:
        video = encode_frames(frames, tmp_path / name, codec=codec)
        np.testing.assert_array_equal(read_frames(video), frames)


def test_fps_and_size_are_applied_by_ffmpeg(clip):
    frames = read_frames(clip, size=(40, 30), fps=10)
    assert frames.shape == (20, 30, 40, 3)


def test_start_and_duration_cut_the_video(tmp_path):
    frames = random_frames(50, 16, 16)
    video = encode_frames(frames, tmp_path / "v.mkv")
    cut = read_frames(video, start=0.4, duration=0.8)
    np.testing.assert_array_equal(cut, frames[10:30])


def test_iter_frames_streams_the_same_frames_in_chunks(clip):
    chunks = list(iter_frames(clip, chunk_frames=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    np.testing.assert_array_equal(np.concatenate(chunks), read_frames(clip))


def test_write_video_pads_odd_sizes_and_keeps_content(tmp_path):
    frames = np.zeros((10, 17, 33, 3), dtype=np.uint8)
    frames[:, :, :16] = (200, 40, 40)
    out = write_video(frames, tmp_path / "odd.mp4", fps=25)
    info = probe(out)
    assert (info.width, info.height, info.frames) == (34, 18, 10)
    back = read_frames(out)[:, :17, :33].astype(int)
    assert np.abs(back - frames).mean() < 6


def test_frame_folder_is_read_in_natural_order(tmp_path):
    frames = random_frames(12, 8, 10)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    info = probe(folder)
    assert info.is_folder and (info.frames, info.width, info.height) == (12, 10, 8)
    np.testing.assert_array_equal(read_frames(folder), frames)  # f2 before f10
    assert read_frames(folder, size=(5, 4), fps=12.5).shape == (6, 4, 5, 3)


def test_rotation_metadata_gives_upright_frames(tmp_path):
    frames = np.zeros((5, 32, 48, 3), dtype=np.uint8)
    frames[:, :16] = (255, 0, 0)  # top half red
    plain = encode_frames(frames, tmp_path / "plain.mp4", codec=("-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p"))
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated)], check=True)
    info = probe(rotated)
    assert info.rotation == 90 and (info.width, info.height) == (32, 48)
    upright = read_frames(rotated)
    assert upright.shape == (5, 48, 32, 3)
    expected = np.rot90(read_frames(plain), k=1, axes=(1, 2))  # a 90 degree display matrix turns counterclockwise
    assert np.abs(upright.astype(int) - expected).mean() < 2
    assert np.abs(upright.astype(int) - expected[:, ::-1, ::-1]).mean() > 50


def test_variable_frame_rate_with_fps_gives_exact_counts(tmp_path):
    video = tmp_path / "vfr.mkv"
    graph = "[0][1]concat=n=2:v=1:a=0"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=32x32:r=10:d=2", "-f", "lavfi", "-i",
                    "testsrc2=s=32x32:r=30:d=2", "-filter_complex", graph, "-fps_mode", "vfr", "-c:v", "ffv1", str(video)], check=True)
    assert len(read_frames(video)) == 80  # 20 + 60 frames as stored
    for fps in (5, 10, 25):
        assert len(read_frames(video, fps=fps)) == 4 * fps
        assert probe(video).frames_at(fps=fps) == 4 * fps


def test_truncated_video_decodes_what_it_can_and_warns(tmp_path, capsys):
    whole = make_video(tmp_path / "whole.mp4", seconds=4, extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    frames = read_frames(cut)
    assert 0 < len(frames) < 100
    assert f"decoded {len(frames)} frames" in capsys.readouterr().err


def test_truncated_video_without_index_is_refused(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", seconds=4)  # the index (moov) is written last
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoError, match="not a video ffmpeg can read"):
        probe(cut)


def test_names_with_shell_characters_are_taken_literally(tmp_path, clip):
    name = tmp_path / "a b 'c' \"d\"; touch PWNED; $(touch PWNED2) `touch PWNED3` -x:y é.mp4"
    name.write_bytes(clip.read_bytes())
    assert len(read_frames(name)) == 50
    out = write_video(read_frames(name), tmp_path / "-out; $(touch PWNED4).mp4", fps=25)
    assert probe(out).frames == 50
    assert not any(p.name.startswith("PWNED") for p in tmp_path.iterdir())


@pytest.fixture
def stuck_ffmpeg(tmp_path, monkeypatch):
    """An `ffmpeg` that hangs: it reads nothing, writes nothing and never ends."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VGAN_FFMPEG", str(fake))
    ffmpeg_exe.cache_clear()
    yield fake
    ffmpeg_exe.cache_clear()


def test_a_stuck_ffmpeg_is_stopped_and_named_in_one_error(stuck_ffmpeg, tmp_path, clip, monkeypatch):
    monkeypatch.setattr(process, "PROBE_TIMEOUT_S", 1)
    monkeypatch.setattr(process, "STALL_TIMEOUT_S", 1)
    started = time.monotonic()
    with pytest.raises(VideoError, match="did not finish reading the file in 1 s"):
        probe(clip)
    with pytest.raises(VideoError, match="made no progress for 1 s"):
        write_video(np.zeros((4, 16, 16, 3), dtype=np.uint8), tmp_path / "out.mp4", fps=25)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []
    assert time.monotonic() - started < 30


# ffmpeg-python's own __init__.py; the PyPI package `ffmpeg` (which cvvdp requires) ships an empty
# one, and whichever of the two pip installs last is the one left.
FFMPEG_PYTHON_INIT = """from . import nodes, _ffmpeg, _filters, _probe, _run, _view
from .nodes import *
from ._ffmpeg import *
from ._filters import *
from ._probe import *
from ._run import *
from ._view import *
"""
ROUND_TRIP = """
import sys
import ffmpeg
import numpy as np
from media.decode import iter_frames
from media.encode import write_video
ramp = np.linspace(0, 255, 48)[None, None, :, None] + np.arange(6)[:, None, None, None] * 8  # smooth: H.264 keeps it
frames = np.broadcast_to(np.minimum(ramp, 255), (6, 32, 48, 3)).astype(np.uint8)
write_video(frames, sys.argv[1], fps=25)
again = np.concatenate(list(iter_frames(sys.argv[1])))
print(hasattr(ffmpeg, "input"), again.shape, float(np.abs(again.astype(int) - frames).mean()))
"""


@pytest.mark.parametrize("last", ["ffmpeg", "ffmpeg-python"])
def test_video_reads_and_writes_whichever_ffmpeg_package_pip_installed_last(tmp_path, last):
    """vgan imports ffmpeg-python by its modules (media/ffmpeg_graph.py), not by the package's
    __init__.py, which the unrelated `ffmpeg` package overwrites with an empty file when pip
    installs it second: both ends of that race, laid out here, read and write video alike."""
    import importlib.util
    import shutil
    import sys

    from conftest import REPO

    installed = Path(importlib.util.find_spec("ffmpeg").submodule_search_locations[0])
    assert (installed / "_ffmpeg.py").exists(), f"{installed} holds no ffmpeg-python: pip install -r requirements.txt"
    package = tmp_path / "site" / "ffmpeg"
    shutil.copytree(installed, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__init__.py").write_text("" if last == "ffmpeg" else FFMPEG_PYTHON_INIT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    shown = subprocess.run([sys.executable, "-c", ROUND_TRIP, str(tmp_path / "v.mp4")], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    has_input, shape, error = shown.stdout.split(" ", 1)[0], *shown.stdout.strip().split(" ", 1)[1].rsplit(" ", 1)
    assert has_input == str(last == "ffmpeg-python")  # the race really was laid out both ways
    assert shape == "(6, 32, 48, 3)" and float(error) < 3  # the frames came back (H.264: within a few levels)
