"""Every call to the ffmpeg binary: find it, probe a video, decode frames into numpy, encode frames.

There is one way to run it: `run_ffmpeg` for a command that runs to its end, within a time limit,
and `FfmpegPipe` for a process that streams frames through pipes, killed when it makes no progress
for STALL_TIMEOUT_S. Command lines are built with ffmpeg-python (or as lists) and run as argument
lists, never through a shell; paths are passed as `file:` URLs so that names with spaces, quotes,
`;`, `$(...)`, `:` or a leading `-` are taken literally. Frame folders are accepted wherever a video is.
    frames = read_frames("videos/in.mp4", size=Size(64, 64), fps=10)   # uint8 (N, H, W, 3)
"""
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from utils import frame_folder
from utils.errors import VideoError, warn
from utils.fsio import StagedFile, ensure_parent, staged_file

PROBE_TIMEOUT_S = 120
STALL_TIMEOUT_S = 120  # a streaming ffmpeg that neither reads nor writes for this long is stuck
SECONDS_PER_FRAME = 0.5  # time allowed per frame to a command that runs to its end (2 frames/s), on top of a minute
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov"}
VMAF_MIN_SIDE = 64


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


def _ffmpeg_reason(stderr, url):
    """The last meaningful line ffmpeg printed, without the file name it repeats."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Press [q]", "frame=", "[out#"))]
    reason = lines[-1] if lines else "ffmpeg gave no reason"
    reason = reason.replace(url + ": ", "").replace(url, "the file")
    return re.sub(r"^\[[^\]]+\]\s*", "", reason)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds. Width and height are as displayed (after rotation)."""

    path: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    rotation: int
    has_video: bool
    has_audio: bool
    is_folder: bool = False
    comment: str = ""  # the container's comment tag (vgan marks the videos it writes)

    def frames_at(self, fps=None, start=None, duration=None):
        """How many frames a decode with these options yields (exact for CFR input)."""
        if self.is_folder:
            return len(frame_folder.selected_indices(self.frames, fps, start, duration))
        if fps is None and start is None and duration is None:
            return self.frames
        return self.nominal_frames(fps, start, duration)

    def nominal_frames(self, fps=None, start=None, duration=None):
        """How many frames the container's duration promises (more than `frames` in a truncated file)."""
        available = max(0.0, self.duration - (start or 0.0))
        seconds = available if duration is None else min(duration, available)
        return int(round(seconds * (fps or self.fps)))


def probe(path):
    """Width, height, fps, frame count, duration, rotation and streams of a video or frame folder."""
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "no such file or folder")
    if p.is_dir():
        files = frame_folder.list_frames(p)
        h, w = frame_folder.load_image(files[0]).shape[:2]
        fps = frame_folder.FOLDER_FPS
        return VideoInfo(str(path), w, h, fps, len(files), len(files) / fps, 0, True, False, True)
    if p.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes); it holds no video")
    url = file_url(path)
    # Copying the stream to nowhere reads every packet: the exact frame count, without decoding.
    text = run_ffmpeg(["-i", url, "-map", "0:v:0?", "-c", "copy", "-f", "null", "-"], path, PROBE_TIMEOUT_S,
                      "reading the file", verbosity="info").stderr
    head = text.split("Stream mapping:")[0].split("Output #0")[0]
    if "Input #0" not in head:
        raise VideoError(path, f"not a video ffmpeg can read ({_ffmpeg_reason(text, url)}); check the file or re-encode it")
    video = [line for line in head.splitlines() if re.search(r"Stream #0:\d+.*: Video:", line) and "attached pic" not in line]
    has_audio = bool(re.search(r"Stream #0:\d+.*: Audio:", head))
    if not video:
        kind = "audio only" if has_audio else "no streams ffmpeg can use"
        raise VideoError(path, f"has no video stream ({kind}); give a video file")
    size = re.search(r",\s(\d+)x(\d+)[\s,\[]", video[0] + " ")
    if not size:
        raise VideoError(path, "ffmpeg reports no frame size for the video stream; re-encode the file")
    width, height = int(size.group(1)), int(size.group(2))
    rate = re.search(r"([\d.]+)(k?) fps", video[0]) or re.search(r"([\d.]+)(k?) tbr", video[0])
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 25.0
    rotation = _rotation(head)
    if rotation % 180:
        width, height = height, width
    counts = re.findall(r"frame=\s*(\d+)", text)
    frames = int(counts[-1]) if counts else 0
    clock = re.search(r"Duration: (\d+):(\d+):([\d.]+)", head)
    duration = int(clock.group(1)) * 3600 + int(clock.group(2)) * 60 + float(clock.group(3)) if clock else frames / fps
    if frames == 0:
        raise VideoError(path, f"has a video stream but no frames could be read ({_ffmpeg_reason(text, url)}); the file may be truncated")
    comment = re.search(r"^\s*comment\s*:\s*(.*)$", head, re.MULTILINE)
    return VideoInfo(str(path), width, height, fps, frames, duration, rotation, True, has_audio,
                     comment=comment.group(1).strip() if comment else "")


def _rotation(head):
    found = re.search(r"rotation of (-?[\d.]+) degrees", head) or re.search(r"rotate\s*:\s*(-?\d+)", head)
    return int(round(float(found.group(1)))) % 360 if found else 0


def _decoded_stream(path, size=None, fps=None, start=None, duration=None):
    """The ffmpeg-python video node for `path` cut to [start, start+duration], at `fps`, resized to `size`."""
    seek = {k: v for k, v in (("ss", start), ("t", duration)) if v is not None}
    video = ffmpeg.input(file_url(path), **seek).video
    if fps is not None:
        video = video.filter("fps", fps=fps)
    if size is not None:
        video = video.filter("scale", size[0], size[1], flags="area")
    return video


def _judge_decode(path, stderr, returncode, count, expected, verb):
    """After a decode: refuse when no frame came out; warn when ffmpeg complained (a damaged or
    truncated file), saying how many frames came out of how many the container promised."""
    if count == 0:
        reason = _ffmpeg_reason(stderr, file_url(path)) if stderr.strip() else "nothing in the asked time range"
        raise VideoError(path, f"no frames could be decoded ({reason}); check the file, --start and --duration")
    if returncode != 0 or stderr.strip():
        warn(path, f"damaged or truncated: {verb} {count} frames (about {expected} expected), the rest was skipped")


class _Decoder:
    """An ffmpeg process writing raw rgb24 frames to a pipe that is read straight into numpy arrays."""

    def __init__(self, path, info, size=None, fps=None, start=None, duration=None):
        self.path, self.info = path, info
        self.width, self.height = size if size else (info.width, info.height)
        self.frame_bytes = self.width * self.height * 3
        out = _decoded_stream(path, size, fps, start, duration).output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        self.pipe = FfmpegPipe(out, path, writes=True)

    def read_into(self, out):
        """Fill `out` (uint8, n x H x W x 3, C-contiguous) with up to n frames; return how many came."""
        return self.pipe.read_into(memoryview(out).cast("B")) // self.frame_bytes

    def finish(self, decoded, expected):
        """Wait for ffmpeg; refuse when nothing decoded, warn when the file ended early or was damaged."""
        code, text = self.pipe.finish()
        _judge_decode(self.path, text, code, decoded, expected, "decoded")


def read_frames(path, size=None, fps=None, start=None, duration=None, info=None):
    """The whole video as uint8 (N, H, W, 3), decoded by ffmpeg into a preallocated array.

    `size` is a Size (width, height); ffmpeg resizes and converts the frame rate. A damaged or
    truncated file gives the frames that could be decoded and a warning that says how many. `info`
    is the video's `probe` result when the caller has it already."""
    info = info or probe(path)
    if info.is_folder:
        return next(frame_folder.read_folder(path, size, fps, start, duration))
    expected = info.frames_at(fps, start, duration)
    decoder = _Decoder(path, info, size, fps, start, duration)
    try:
        frames = np.empty((max(1, expected + 1), decoder.height, decoder.width, 3), dtype=np.uint8)
        count = decoder.read_into(frames)
        while count == len(frames):  # more frames than the header promised: grow and keep reading
            grown = np.empty((len(frames) * 3 // 2 + 16,) + frames.shape[1:], dtype=np.uint8)
            grown[:count] = frames
            frames = grown
            count += decoder.read_into(frames[count:])
    except BaseException:
        decoder.pipe.kill()
        raise
    decoder.finish(count, info.nominal_frames(fps, start, duration))
    return frames[:count] if count > 0.9 * len(frames) else frames[:count].copy()


def iter_frames(path, size=None, fps=None, start=None, duration=None, chunk_frames=64, info=None):
    """Yield the video as uint8 arrays (n, H, W, 3) of at most `chunk_frames` frames each,
    so memory does not grow with the video's length."""
    info = info or probe(path)
    if info.is_folder:
        yield from frame_folder.read_folder(path, size, fps, start, duration, chunk_frames)
        return
    decoder = _Decoder(path, info, size, fps, start, duration)
    count = 0
    try:
        while True:
            chunk = np.empty((chunk_frames, decoder.height, decoder.width, 3), dtype=np.uint8)
            got = decoder.read_into(chunk)
            count += got
            if got:
                yield chunk[:got]
            if got < chunk_frames:
                break
    except BaseException:
        decoder.pipe.kill()
        raise
    decoder.finish(count, info.nominal_frames(fps, start, duration))


def _check_suffix(path):
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(path, f"unsupported video file type; use one of {', '.join(sorted(VIDEO_SUFFIXES))}")


class VideoWriter:
    """Encode uint8 RGB frames to H.264 (yuv420p), written to a temporary file renamed on close().
    As a context manager it closes on success and aborts (nothing left behind) on failure.

    Odd sizes are padded to even ones; `audio_from` copies that file's first audio track in;
    `comment` goes into the container's comment tag; `crf` is libx264's quality (18: visually lossless)."""

    def __init__(self, path, fps, audio_from=None, overwrite=True, crf=18, comment=None):
        _check_suffix(path)
        self.path, self.fps, self.audio_from, self.crf, self.comment = Path(path), fps, audio_from, crf, comment
        self.staged = StagedFile(self.path, overwrite=overwrite, what="video")
        self.pipe = None
        self.frames = 0

    def _start(self, height, width):
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=self.fps).video
        video = video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        streams, options = [video], {}
        if self.audio_from is not None:
            # Silence pads a sound track that ends first, and -shortest then ends the sound with the
            # last frame: every frame is kept, and a longer track is cut at the video's end.
            streams.append(ffmpeg.input(file_url(self.audio_from)).audio.filter("apad"))
            options = {"acodec": "aac", "shortest": None}
        if self.comment:
            options["metadata"] = f"comment={self.comment}"
        out = ffmpeg.output(*streams, file_url(self.staged.tmp), vcodec="libx264", pix_fmt="yuv420p", crf=self.crf,
                            preset="veryfast", movflags="+faststart", **options)
        self.pipe = FfmpegPipe(out, self.path, reads=True)

    def write(self, frames):
        """Append frames: uint8 (n, H, W, 3) or one (H, W, 3)."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.ndim == 3:
            frames = frames[None]
        if self.pipe is None:
            self._start(*frames.shape[1:3])
        try:
            self.pipe.write(memoryview(frames).cast("B"))
        except (BrokenPipeError, ValueError):  # ffmpeg ended, or was stopped for making no progress
            _, text = self.pipe.finish()
            self.staged.discard()
            raise VideoError(self.path, f"ffmpeg stopped while encoding ({_ffmpeg_reason(text, file_url(self.staged.tmp))})") from None
        self.frames += len(frames)

    def close(self):
        """Finish encoding and move the video into place."""
        if self.pipe is None:
            self.abort()
            raise VideoError(self.path, "no frames to write")
        code, text = self.pipe.finish()
        if code != 0:
            self.staged.discard()
            raise VideoError(self.path, f"ffmpeg could not write the video ({_ffmpeg_reason(text, file_url(self.staged.tmp))})")
        self.staged.commit()

    def abort(self):
        """Stop ffmpeg and remove the temporary file; the destination is left as it was."""
        if self.pipe is not None and self.pipe.proc.poll() is None:
            self.pipe.kill()
        self.staged.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(frames, path, fps, audio_from=None, overwrite=True, comment=None):
    """Encode a whole uint8 (N, H, W, 3) array (or an iterable of such chunks) to `path`."""
    with VideoWriter(path, fps, audio_from=audio_from, overwrite=overwrite, comment=comment) as writer:
        if isinstance(frames, np.ndarray):
            writer.write(frames)
        else:
            for chunk in frames:
                writer.write(chunk)
    return Path(path)


def render(video, path, duration, fps=25):
    """Encode an ffmpeg-python stream (e.g. lavfi sources and filters) to `path`, deterministically."""
    _check_suffix(path)
    ensure_parent(path)
    with staged_file(path) as tmp:
        out = video.output(file_url(tmp), t=duration, vcodec="libx264", pix_fmt="yuv420p", crf=18,
                           preset="veryfast", threads=1, movflags="+faststart")
        done = run_ffmpeg(out, path, work_timeout(duration * fps), "rendering")
        if done.returncode != 0:
            raise VideoError(path, f"ffmpeg could not render ({_ffmpeg_reason(done.stderr, file_url(tmp))})")
    return Path(path)


def write_image_sequence(path, folder, pattern_suffix, size=None, fps=None, start=None, duration=None, quality=2, info=None,
                         on_frames=None):
    """Decode `path` with ffmpeg straight into numbered image files in `folder` (created empty by the caller).

    Returns how many frames were written. `pattern_suffix` is ".png" or ".jpg". `on_frames(count)`
    hears how many are written as it goes."""
    info = info or probe(path)
    if info.is_folder:
        raise VideoError(path, "is already a folder of frames")
    video = _decoded_stream(path, size, fps, start, duration)
    # image2 expands % sequences in the whole path: double any % in the folder name.
    pattern = os.path.abspath(folder).replace("%", "%%") + "/%06d" + pattern_suffix
    options = {"q:v": quality} if pattern_suffix == ".jpg" else {}
    out = video.output("file:" + pattern, format="image2", fps_mode="passthrough", start_number=1, **options)
    expected = info.nominal_frames(fps, start, duration)
    done = run_ffmpeg(out, path, work_timeout(expected), "writing the frames", on_frames=on_frames)
    written = sum(1 for p in Path(folder).iterdir() if p.suffix == pattern_suffix)
    _judge_decode(path, done.stderr, done.returncode, written, expected, "wrote")
    return written


@functools.lru_cache(maxsize=None)
def has_filter(name):
    """Whether this ffmpeg binary was built with the filter `name` (libvmaf is optional)."""
    listing = run_ffmpeg(["-filters"], "ffmpeg", PROBE_TIMEOUT_S, "listing its filters", verbosity="info").stdout
    return re.search(rf"^\s*\S+\s+{re.escape(name)}\s", listing, re.MULTILINE) is not None


def vmaf(distorted, reference):
    """VMAF of `distorted` against `reference` (same size and frame count) through ffmpeg's libvmaf.
    Frames with a side under VMAF_MIN_SIDE pixels are first enlarged (bicubic, both alike)."""
    if not has_filter("libvmaf"):
        raise VideoError(distorted, "this ffmpeg has no libvmaf filter; drop --vmaf or set VGAN_FFMPEG to an ffmpeg built with it")
    streams = [ffmpeg.input(file_url(distorted)).video, ffmpeg.input(file_url(reference)).video]
    info = probe(distorted)
    factor = -(-VMAF_MIN_SIDE // min(info.width, info.height))
    if factor > 1:  # libvmaf's feature extractors need some room (it crashes on 16x16 frames)
        streams = [s.filter("scale", info.width * factor, info.height * factor, flags="bicubic") for s in streams]
    scored = ffmpeg.filter(streams, "libvmaf").output("-", format="null")
    done = run_ffmpeg(scored, distorted, work_timeout(info.frames), "scoring VMAF", verbosity="info")
    found = re.search(r"VMAF score: ([\d.]+)", done.stderr)
    if done.returncode != 0 or not found:
        raise VideoError(distorted, f"libvmaf gave no score ({_ffmpeg_reason(done.stderr, file_url(distorted))})")
    return float(found.group(1))
