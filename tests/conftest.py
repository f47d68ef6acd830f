"""Shared test helpers: videos made by ffmpeg's lavfi sources, and running main.py as a user would."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from datasets.build import build_dataset, derived_sources
from utils.ffmpeg import ffmpeg_exe
from utils.size import Size

REPO = Path(__file__).resolve().parent.parent
# Where train keeps what it measured of this machine: one cache for the test session, none left in ~/.cache.
os.environ.setdefault("VGAN_CACHE_DIR", tempfile.mkdtemp(prefix="vgan-test-cache-"))


def build(folder, video, pair, side, fps=None, **options):
    """A derived-pair dataset of `video` at side x side pixels."""
    build_dataset(folder, derived_sources([video], pair), Size(side, side), fps=fps, **options)
    return folder


def make_video(path, source="testsrc2", size="64x48", rate=25, seconds=2, codec=("-c:v", "libx264", "-pix_fmt", "yuv420p"), extra=()):
    """Render a lavfi source to `path` with ffmpeg (argument list, no shell)."""
    joint = ":" if "=" in source else "="  # "testsrc2" or "color=c=red": options follow either way
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}{joint}s={size}:r={rate}:d={seconds}", *extra, *codec, str(path)]
    subprocess.run(cmd, check=True)
    return Path(path)


def encode_frames(frames, path, rate=25, codec=("-c:v", "ffv1", "-pix_fmt", "bgr0")):
    """Encode uint8 RGB frames (N, H, W, 3) to `path` through a raw pipe; lossless by default."""
    n, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(rate),
           "-i", "pipe:", *codec, str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True)
    return Path(path)


def write_blank_dataset(folder, frames, side):
    """A dataset of black frames in sparse files: any size, without using the disk."""
    folder.mkdir(parents=True)
    for name in ("a.npy", "b.npy"):
        np.lib.format.open_memmap(folder / name, mode="w+", dtype=np.uint8, shape=(frames, side, side, 3)).flush()
    meta = {"frames": frames, "width": side, "height": side, "fps": 25, "pair": "paired",
            "segments": [{"start": 0, "stop": frames, "val_start": frames - 16}]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return 2 * frames * side * side * 3


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python main.py ARGS` in `cwd`; returns the CompletedProcess with text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "main.py"), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(result, *fragments):
    """Exit code 2 and one line `error: ...` naming each fragment; no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


def leftovers(folder):
    """Temporary files or folders an interrupted write would leave behind."""
    return [p.name for p in Path(folder).iterdir() if ".partial" in p.name]


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """A 2 s, 25 fps, 64x48 H.264 test pattern (50 frames)."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4")


TINY = ["--depth", "2", "--channels", "4", "--d-channels", "4", "--d-layers", "2", "-pool", "4", "--step", "2"]


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory):
    """The built-in sample video, rendered once per test session."""
    from datasets.sample import ensure_sample

    return ensure_sample(tmp_path_factory.mktemp("sample") / "sample.mp4")


@pytest.fixture(scope="session")
def gray32(tmp_path_factory, sample_video):
    """Gray -> colour at 32 x 32 from the built-in sample: 300 frames."""
    return build(tmp_path_factory.mktemp("data") / "gray32", sample_video, "gray", 32)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, sample_video):
    """60 frames of 16 x 16 (the sample at 5 fps): for tests about mechanics, not learning."""
    return build(tmp_path_factory.mktemp("data") / "tiny", sample_video, "gray", 16, fps=5)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny):
    """A tiny gray -> colour experiment, trained for 2 epochs: (working folder, experiment folder)."""
    work = tmp_path_factory.mktemp("work")
    result = run_cli("train", "--data", tiny, *TINY, "--epochs", "2", "--name", "tiny", cwd=work)
    assert result.returncode == 0, result.stderr
    return work, work / "checkpoints" / "tiny"
