"""Frames into video files: H.264 through ffmpeg's stdin, written under a temporary name and
renamed into place, so a failure or a kill leaves nothing half-written.
    write_video(frames, "out.mp4", fps=25)       # uint8 (N, H, W, 3)
"""
from pathlib import Path

from media import ffmpeg_graph as ffmpeg
import numpy as np

from media.process import FfmpegPipe, ffmpeg_reason, file_url, run_ffmpeg, work_timeout
from utils.errors import VideoError
from utils.fsio import StagedFile, ensure_parent, staged_file

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov"}


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
            raise VideoError(self.path, f"ffmpeg stopped while encoding ({ffmpeg_reason(text, file_url(self.staged.tmp))})") from None
        self.frames += len(frames)

    def close(self):
        """Finish encoding and move the video into place."""
        if self.pipe is None:
            self.abort()
            raise VideoError(self.path, "no frames to write")
        code, text = self.pipe.finish()
        if code != 0:
            self.staged.discard()
            raise VideoError(self.path, f"ffmpeg could not write the video ({ffmpeg_reason(text, file_url(self.staged.tmp))})")
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
            raise VideoError(path, f"ffmpeg could not render ({ffmpeg_reason(done.stderr, file_url(tmp))})")
    return Path(path)
