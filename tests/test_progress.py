"""Every long command shows frames done out of the total, the rate and the time left, as plain lines
when its output is not a terminal; --quiet silences it."""
import re

import pytest

from conftest import make_video, run_cli

PLAIN = {"VGAN_PROGRESS_SECONDS": "0"}  # a line at every update, so that a short job shows several


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("progress") / "v.mp4", size="48x32", seconds=2)  # 50 frames


def commands(video, folder, tiny_run):
    experiment = tiny_run[1]
    return {
        "split": ["split", video, "-o", folder / "frames", "--format", "png"],
        "building": ["build-dataset", "--video", video, "--pair", "blur", "--size", "32", "-o", folder / "data"],
        "compare": ["compare", "--checkpoint", experiment, "--video", video, "-o", folder / "c.mp4"],
        "evaluate": ["evaluate", "--checkpoint", experiment],
    }


@pytest.mark.parametrize("what", ["split", "building", "compare", "evaluate"])
def test_long_commands_print_progress_lines_off_a_terminal_and_none_when_quiet(video, tiny_run, tmp_path, what):
    args = commands(video, tmp_path, tiny_run)[what]
    result = run_cli(*args, cwd=tiny_run[0], env=PLAIN)
    assert result.returncode == 0, result.stderr
    lines = re.findall(rf"^{what} .*?: (\d+)/(\d+) frames, [\d.]+ frames/s, (.+) left$", result.stderr, flags=re.M)
    assert lines, result.stderr
    done = [int(d) for d, _, _ in lines]
    assert done == sorted(done) and len({t for _, t, _ in lines}) == 1  # counting up, against one known total
    assert done[-1] == int(lines[-1][1]) and lines[-1][2] == "0 s"  # it ends at the total
    quiet = run_cli(*commands(video, tmp_path / "quiet", tiny_run)[what], "--quiet", cwd=tiny_run[0], env=PLAIN)
    assert quiet.returncode == 0, quiet.stderr
    assert "frames/s" not in quiet.stderr
