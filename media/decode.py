"""Frames out of a video or a frame folder, as uint8 (n, H, W, 3) numpy chunks: ffmpeg decodes a
video into a raw rgb24 pipe that is read straight into preallocated arrays, resized by ffmpeg and
at a fixed frame rate when asked, so memory does not grow with the video's length.
    for chunk in iter_frames("videos/in.mp4", size=Size(64, 64), fps=10): ...
"""
from media import ffmpeg_graph as ffmpeg
import numpy as np

from media.frame_folder import read_folder
from media.probe import probe
from media.process import FfmpegPipe, ffmpeg_reason, file_url
from utils.errors import VideoError, warn


def decoded_stream(path, size=None, fps=None, start=None, duration=None):
    """The ffmpeg-python video node for `path` cut to [start, start+duration], at `fps`, resized to `size`."""
    seek = {k: v for k, v in (("ss", start), ("t", duration)) if v is not None}
    video = ffmpeg.input(file_url(path), **seek).video
    if fps is not None:
        video = video.filter("fps", fps=fps)
    if size is not None:
        video = video.filter("scale", size[0], size[1], flags="area")
    return video


def judge_decode(path, stderr, returncode, count, expected, verb):
    """After a decode: refuse when no frame came out; warn when ffmpeg complained (a damaged or
    truncated file), saying how many frames came out of how many the container promised."""
    if count == 0:
        reason = ffmpeg_reason(stderr, file_url(path)) if stderr.strip() else "nothing in the asked time range"
        raise VideoError(path, f"no frames could be decoded ({reason}); check the file, --start and --duration")
    if returncode != 0 or stderr.strip():
        warn(path, f"damaged or truncated: {verb} {count} frames (about {expected} expected), the rest was skipped")


class _Decoder:
    """An ffmpeg process writing raw rgb24 frames to a pipe that is read straight into numpy arrays."""

    def __init__(self, path, info, size=None, fps=None, start=None, duration=None):
        self.path, self.info = path, info
        self.width, self.height = size if size else (info.width, info.height)
        self.frame_bytes = self.width * self.height * 3
        out = decoded_stream(path, size, fps, start, duration).output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        self.pipe = FfmpegPipe(out, path, writes=True)

    def read_into(self, out):
        """Fill `out` (uint8, n x H x W x 3, C-contiguous) with up to n frames; return how many came."""
        return self.pipe.read_into(memoryview(out).cast("B")) // self.frame_bytes

    def finish(self, decoded, expected):
        """Wait for ffmpeg; refuse when nothing decoded, warn when the file ended early or was damaged."""
        code, text = self.pipe.finish()
        judge_decode(self.path, text, code, decoded, expected, "decoded")


def iter_frames(path, size=None, fps=None, start=None, duration=None, chunk_frames=64, info=None):
    """Yield the video as uint8 arrays (n, H, W, 3) of at most `chunk_frames` frames each,
    so memory does not grow with the video's length."""
    info = info or probe(path)
    if info.is_folder:
        yield from read_folder(path, size, fps, start, duration, chunk_frames)
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
