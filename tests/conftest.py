"""Shared test helpers: videos made by ffmpeg's lavfi sources, and running main.py as a user would."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# pytest.ini runs the suite in worker processes (pytest-xdist), one per core. Each worker, and every
# process it starts, computes on one thread: two workers that each asked torch for every core would
# fight over them. Set before torch is imported, so that torch and OpenMP start with it.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
# Every process a test session starts inherits this mark, so that the session can tell its own
# processes from those of another session running beside it (another worker).
SESSION_MARK = f"VGAN_TEST_SESSION={os.getpid()}"
os.environ["VGAN_TEST_SESSION"] = str(os.getpid())

import numpy as np
import pytest

from datasets.build import build_dataset, derived_sources
from media.decode import iter_frames
from media.process import ffmpeg_exe
from utils.size import Size

REPO = Path(__file__).resolve().parent.parent
# Where train keeps what it measured of this machine: one cache for the test session, none left in ~/.cache.
os.environ.setdefault("VGAN_CACHE_DIR", tempfile.mkdtemp(prefix="vgan-test-cache-"))
# The suite checks what vgan does on a CPU (bitwise resumes, gloo under torchrun, memory plans), so
# every command it runs, and this process, see no GPU: on a GPU host `--device auto` is the CPU
# here too. What it does on a GPU: tests/test_gpu_ready.py with torch.cuda stood in for, and bench/gpu.py.
os.environ["CUDA_VISIBLE_DEVICES"] = ""


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



def read_frames(path, **options):
    """The whole video or frame folder as one uint8 (N, H, W, 3) array (media.decode.iter_frames' chunks)."""
    return np.concatenate(list(iter_frames(path, **options)))

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


SPAWNED = []  # every process group a test started, ended when that test ends


def as_from_a_terminal(then=None):
    """preexec_fn: in the child, Ctrl-C (SIGINT) does what it does for a command typed at a
    terminal, even when the test run itself was started in the background (`pytest &`), which
    leaves SIGINT ignored in everything it starts (and a Python started so never raises
    KeyboardInterrupt); then `then`, a test's own preexec_fn."""
    def prepare():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if then is not None:
            then()

    return prepare


def spawn(command, preexec_fn=None, **popen):
    """subprocess.Popen in a process group of its own, so that `kill_group` ends it and everything it
    started (a compare's ffmpeg, a sweep's training children), not only the process itself. Whatever
    of the group still runs when the test ends is killed then."""
    proc = subprocess.Popen([str(part) for part in command], start_new_session=True, preexec_fn=as_from_a_terminal(preexec_fn),
                            **popen)
    SPAWNED.append(proc)
    return proc


def kill_group(proc):
    """SIGKILL to every process of `proc`'s group that is still alive, then reap `proc`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_group(command, timeout=600, input=None, **popen):
    """subprocess.run with text output, in a process group of its own: on a timeout (or any error
    here) the whole group is killed, so nothing the command started outlives the test."""
    with spawn(command, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
               stderr=subprocess.PIPE, text=True, **popen) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            kill_group(proc)
            raise
    SPAWNED.remove(proc)  # ended, its output closed: nothing of it is left to end, and its pid may be reused
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


FRESH_PROCESSES_ENV = "VGAN_TEST_FRESH_PROCESSES"  # set to 1: every run_cli starts a new interpreter


class Zygote:
    """tests/zygote.py: a process with vgan imported that forks a child per command (seconds saved
    on each of a few hundred commands). Started at the first command, ended with the session."""

    def __init__(self, folder):
        self.socket_path = str(Path(folder) / "zygote.sock")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "zygote.py"), self.socket_path], cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready", "the test zygote did not start"

    def run(self, argv, cwd, env, timeout):
        """`python main.py ARGV` as a forked child: the CompletedProcess, or TimeoutExpired after
        its whole process group was killed."""
        with tempfile.TemporaryDirectory(prefix="vgan-cli-") as scratch, socket.socket(socket.AF_UNIX) as connection:
            out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
            connection.connect(self.socket_path)
            request = {"argv": argv, "cwd": str(cwd or os.getcwd()), "env": env, "stdout": str(out), "stderr": str(err)}
            connection.sendall((json.dumps(request) + "\n").encode())
            replies = connection.makefile("r")
            pid = int(replies.readline())
            connection.settimeout(timeout)
            try:
                code = int(replies.readline())
            except (TimeoutError, socket.timeout):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["main.py", *argv], timeout) from None
            return subprocess.CompletedProcess(["main.py", *argv], code, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self):
        self.proc.kill()
        self.proc.wait()


ZYGOTE = []  # the session's Zygote, once a command has started it


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python main.py ARGS` in `cwd`; returns the CompletedProcess with text output. It runs as
    a child forked from the test zygote, unless `env` sets more than vgan's own variables (a kernel
    cap, a thread count, a module path: what a fork cannot change after import), which need a fresh
    interpreter, or VGAN_TEST_FRESH_PROCESSES=1 asks for fresh interpreters throughout."""
    argv = [str(a) for a in args]
    full_env = {**os.environ, **(env or {})}
    if os.environ.get(FRESH_PROCESSES_ENV) != "1" and all(key.startswith("VGAN_") for key in env or {}):
        if not ZYGOTE:
            ZYGOTE.append(Zygote(tempfile.mkdtemp(prefix="vgan-zygote-")))
        return ZYGOTE[0].run(argv, cwd, full_env, timeout)
    return run_group([sys.executable, REPO / "main.py", *argv], timeout=timeout, cwd=cwd, env=full_env)


def vgan_processes():
    """{pid: command line} of the `main.py` processes of this checkout that this test session
    started and that are alive now: started as `python main.py`, or forked by the test zygote
    (which itself is not one)."""
    found, zygotes = {}, {z.proc.pid for z in ZYGOTE}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if SESSION_MARK.encode() not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        ours = {str(REPO / "main.py").encode(), str(REPO / "tests" / "zygote.py").encode()} & set(command)
        if ours and state != "Z" and int(pid) not in zygotes:
            found[int(pid)] = b" ".join(command).decode(errors="replace")[:200]
    return found


@pytest.fixture(autouse=True)
def end_what_the_test_started():
    yield
    while SPAWNED:
        kill_group(SPAWNED.pop())


@pytest.fixture(scope="session", autouse=True)
def no_vgan_process_outlives_the_tests():
    """After the last test, no `main.py` that a test started is still running: a timeout or a
    failure killed its whole process group. Any left are listed, killed, and fail the run."""
    before = set(vgan_processes())
    yield
    deadline = time.monotonic() + 30  # a process that was just told to stop may still be saving
    while (left := {pid: cmd for pid, cmd in vgan_processes().items() if pid not in before}) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for zygote in ZYGOTE:
        zygote.close()
    assert not left, f"main.py processes outlived the tests: {left}"


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


# Mechanics, not perception: no JOD at validation (its library takes seconds to load in every training process).
TINY = ["--depth", "2", "--channels", "4", "--d-channels", "4", "--d-layers", "2", "-pool", "4", "--step", "2", "--perceptual-every", "0"]


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
