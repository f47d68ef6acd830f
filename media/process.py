"""Running the ffmpeg binary, the one way vgan does: find it, then `run_ffmpeg` for a command that
runs to its end within a time limit, or `FfmpegPipe` for a process that streams frames through
pipes, killed when it makes no progress for STALL_TIMEOUT_S. Command lines are built with
ffmpeg-python (or as lists) and run as argument lists, never through a shell; paths are passed as
`file:` URLs so that names with spaces, quotes, `;`, `$(...)`, `:` or a leading `-` are taken literally.
    done = run_ffmpeg(["-i", file_url(path), "-f", "null", "-"], path, timeout_s=60, doing="reading the file")
"""
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from utils.errors import VideoError

PROBE_TIMEOUT_S = 120
STALL_TIMEOUT_S = 120  # a streaming ffmpeg that neither reads nor writes for this long is stuck
SECONDS_PER_FRAME = 0.5  # time allowed per frame to a command that runs to its end (2 frames/s), on top of a minute


@functools.lru_cache(maxsize=None)
def ffmpeg_exe():
    """$VGAN_FFMPEG, else `ffmpeg` on PATH, else the binary inside the imageio-ffmpeg wheel."""
    chosen = os.environ.get("VGAN_FFMPEG")
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise VideoError(chosen, "VGAN_FFMPEG does not name an executable ffmpeg; fix or unset it")
        return chosen
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def file_url(path):
    """An absolute `file:` URL, so ffmpeg never reads a name as an option or a protocol."""
    return "file:" + os.path.abspath(path)


def ffmpeg_command(args, verbosity="error"):
    """The argument list of an ffmpeg call: `args` is a list, or an ffmpeg-python output node."""
    args = args if isinstance(args, list) else args.get_args()
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", verbosity, *args]


def work_timeout(frames):
    """Seconds allowed to a command that runs to its end over `frames` frames."""
    return 60 + SECONDS_PER_FRAME * max(0, frames)


def run_ffmpeg(args, path, timeout_s, doing, verbosity="error", on_frames=None):
    """Run ffmpeg to its end within `timeout_s`; returns the CompletedProcess with stdout and stderr
    as text. `path` and `doing` name the file and the work in the error when it cannot run or runs
    over. `on_frames(count)` is told how many frames are done as ffmpeg reports them."""
    if on_frames is not None:
        return _run_reporting(args, path, timeout_s, doing, verbosity, on_frames)
    try:
        done = subprocess.run(ffmpeg_command(args, verbosity), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise VideoError(path, f"ffmpeg did not finish {doing} in {timeout_s:.0f} s; the file may be damaged") from None
    except OSError as exc:
        raise VideoError(path, f"cannot run ffmpeg ({exc.strerror})") from None
    text = [stream.decode("utf-8", errors="replace") for stream in (done.stdout, done.stderr)]
    return subprocess.CompletedProcess(done.args, done.returncode, *text)


def _run_reporting(args, path, timeout_s, doing, verbosity, on_frames):
    """run_ffmpeg, reading ffmpeg's machine-readable progress (`-progress pipe:1`) as it goes."""
    argv = ffmpeg_command(["-progress", "pipe:1", "-nostats", *(args if isinstance(args, list) else args.get_args())], verbosity)
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
        except OSError as exc:
            raise VideoError(path, f"cannot run ffmpeg ({exc.strerror})") from None
        fired = threading.Event()
        overdue = threading.Timer(timeout_s, lambda: (fired.set(), proc.kill()))
        overdue.start()
        try:
            for line in proc.stdout:
                if line.startswith("frame="):
                    on_frames(int(line.split("=", 1)[1]))
            code = proc.wait()
        finally:
            overdue.cancel()
        if fired.is_set():
            raise VideoError(path, f"ffmpeg did not finish {doing} in {timeout_s:.0f} s; the file may be damaged")
        stderr.seek(0)
        return subprocess.CompletedProcess(argv, code, "", stderr.read().decode("utf-8", errors="replace"))


class FfmpegPipe:
    """An ffmpeg process that streams through its stdin or stdout (raw frames). It is killed when a
    read, a write or the wait for its end makes no progress for STALL_TIMEOUT_S (time the caller
    spends elsewhere does not count); the call waiting on it then ends, and `stalled` says why."""

    def __init__(self, args, path, reads=False, writes=False):
        self.path = path
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(ffmpeg_command(args), stdin=subprocess.PIPE if reads else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if writes else subprocess.DEVNULL, stderr=self.stderr, bufsize=0)
        except OSError as exc:
            self.stderr.close()
            raise VideoError(path, f"cannot run ffmpeg ({exc.strerror})") from None
        self.waiting_since, self.stalled, self.result = None, False, None  # waiting_since: a call is blocked on ffmpeg
        self._ended = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        while not self._ended.wait(1.0):
            since = self.waiting_since
            if since is not None and time.monotonic() - since > STALL_TIMEOUT_S:
                self.stalled = True
                self.proc.kill()
                return

    def read_into(self, view):
        """Fill the byte view from ffmpeg's output; returns how many bytes came (fewer at its end)."""
        filled = 0
        try:
            while filled < len(view):
                self.waiting_since = time.monotonic()
                got = self.proc.stdout.readinto(view[filled:])
                if not got:
                    break
                filled += got
        finally:
            self.waiting_since = None
        return filled

    def write(self, data):
        self.waiting_since = time.monotonic()
        try:
            self.proc.stdin.write(data)
        finally:
            self.waiting_since = None

    def finish(self):
        """Close the pipes and wait for ffmpeg's end: (exit code, its messages)."""
        if self.result is None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.waiting_since = time.monotonic()  # the watchdog also bounds the wait for its end
            code = self.proc.wait()
            self.waiting_since = None
            self.result = code, self._messages()
        return self.result

    def kill(self):
        self.proc.kill()
        self.finish()

    def _messages(self):
        self._ended.set()
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", errors="replace")
        self.stderr.close()
        if self.stalled:
            return f"ffmpeg made no progress for {STALL_TIMEOUT_S} s and was stopped"
        return text


def ffmpeg_reason(stderr, url):
    """The last meaningful line ffmpeg printed, without the file name it repeats."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # The muxer's summary lines ("[out#0/mp4 @ ...] video:12KiB ...") are no reason; its errors are.
    lines = [line for line in lines if not line.startswith(("Press [q]", "frame=")) and not (line.startswith("[out#") and "rror" not in line)]
    reason = lines[-1] if lines else "ffmpeg gave no reason"
    reason = reason.replace(url + ": ", "").replace(url, "the file")
    return re.sub(r"^\[[^\]]+\]\s*", "", reason)


@functools.lru_cache(maxsize=None)
def has_filter(name):
    """Whether this ffmpeg binary was built with the filter `name` (libvmaf is optional)."""
    listing = run_ffmpeg(["-filters"], "ffmpeg", PROBE_TIMEOUT_S, "listing its filters", verbosity="info").stdout
    return re.search(rf"^\s*\S+\s+{re.escape(name)}\s", listing, re.MULTILINE) is not None
