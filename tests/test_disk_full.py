"""Writes the file system refuses (a full disk, a read-only mount, a file-size limit) during a
checkpoint, a dataset build, a compare or a page write: one line `error: <file>: <what>`, exit 2,
and what was there before is left as it was. The disk is a small tmpfs, filled to the byte
count each test chooses, so every refusal lands where the test puts it."""
import hashlib
import os
import resource
import subprocess
import sys

import pytest

from conftest import REPO, TINY, assert_user_error, leftovers, run_cli, run_group
from runfolder.checkpoint import load_checkpoint

DISK_BYTES = 4 * 2 ** 20


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk (CI runs as root, which may mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk, leave):
    """Take all but `leave` bytes of the disk's free space."""
    stats = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - leave)))
    stats = os.statvfs(disk)
    assert stats.f_bavail * stats.f_frsize <= leave


def remount(disk, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_on_disk(disk, tmp_path, tiny):
    """A tiny experiment trained for an epoch with its folder on the small disk: (cwd, folder)."""
    result = run_cli("train", "--data", tiny, *TINY, "--epochs", "1", "--checkpoints", disk / "ck", "--name", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path, disk / "ck" / "r"


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_last_pt(disk, run_on_disk, tiny):
    """Room is left for config.json and metrics.jsonl but not for last.pt (about 350 KB), so the
    first save of the resumed run (--save-every 1) is where the disk runs out."""
    cwd, folder = run_on_disk
    before, step = digest(folder / "last.pt"), load_checkpoint(folder)["step"]
    fill(disk, leave=100 * 1024)
    resume = ("train", "--data", tiny, *TINY, "--epochs", "2", "--checkpoints", disk / "ck", "--name", "r", "--resume")
    result = run_cli(*resume, "--save-every", "1", cwd=cwd)
    assert_user_error(result, "last.pt", "no space left on the device", "previous last.pt is kept")
    assert digest(folder / "last.pt") == before and leftovers(folder) == []
    (disk / "filler").unlink()  # with room again, the run goes on from where it was
    again = run_cli(*resume, cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(folder)["step"] == 2 * step


def test_a_read_only_experiment_folder_is_refused_in_one_line(disk, run_on_disk, tiny):
    cwd, folder = run_on_disk
    before = digest(folder / "last.pt")
    remount(disk, "ro")
    resumed = run_cli("train", "--data", tiny, *TINY, "--epochs", "2", "--checkpoints", disk / "ck", "--name", "r", "--resume", cwd=cwd)
    assert_user_error(resumed, folder / "lock", "read-only file system", "nothing was trained")
    page = run_cli("runs", "--checkpoints", disk / "ck", cwd=cwd)
    assert_user_error(page, disk / "ck", "read-only file system")
    remount(disk, "rw")
    assert digest(folder / "last.pt") == before


def test_a_full_disk_during_a_page_write_is_one_line(disk, run_on_disk):
    cwd, _ = run_on_disk
    fill(disk, leave=0)
    assert_user_error(run_cli("runs", "--checkpoints", disk / "ck", cwd=cwd), disk / "ck", "no space left on the device")
    assert leftovers(disk / "ck") == []


def test_a_full_disk_during_compare_keeps_the_previous_output(disk, tiny_run, clip):
    cwd, folder = tiny_run
    out = disk / "out.mp4"
    first = run_cli("compare", "--video", clip, "--checkpoint", folder, "-o", out, cwd=cwd)
    assert first.returncode == 0, first.stderr
    before = digest(out)
    fill(disk, leave=8 * 1024)
    again = run_cli("compare", "--video", clip, "--checkpoint", folder, "-o", out, "--overwrite", "--size", "64x48", cwd=cwd)
    assert_user_error(again, out, "No space left on device")
    assert digest(out) == before and leftovers(disk) == []


def limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_dataset_build_over_the_file_size_limit_keeps_the_previous_dataset(tmp_path, clip):
    """A file-size limit (ulimit -f) smaller than the new arrays, none of which the free-space check
    before the build foresees: np.save is refused mid-write."""
    data = tmp_path / "data"
    build = [sys.executable, str(REPO / "main.py"), "build-dataset", "--video", str(clip), "--pair", "gray", "-o", str(data)]
    assert run_group([*build, "--size", "16"], cwd=tmp_path).returncode == 0
    before = {p.name: digest(p) for p in data.iterdir()}
    result = run_group([*build, "--size", "48", "--overwrite"], cwd=tmp_path, preexec_fn=limit_file_size(100 * 1024))
    assert_user_error(result, data, "file too large", "left as it was")
    assert {p.name: digest(p) for p in data.iterdir()} == before and leftovers(tmp_path) == []
