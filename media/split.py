"""A video cut into numbered image files by ffmpeg, straight from the decoder (the `split` command).
    write_image_sequence("videos/in.mp4", folder, ".jpg", fps=10)
"""
import os
from pathlib import Path

from media.decode import decoded_stream, judge_decode
from media.probe import probe
from media.process import run_ffmpeg, work_timeout
from utils.errors import VideoError


def write_image_sequence(path, folder, pattern_suffix, size=None, fps=None, start=None, duration=None, quality=2, info=None,
                         on_frames=None):
    """Decode `path` with ffmpeg straight into numbered image files in `folder` (created empty by the caller).

    Returns how many frames were written. `pattern_suffix` is ".png" or ".jpg". `on_frames(count)`
    hears how many are written as it goes."""
    info = info or probe(path)
    if info.is_folder:
        raise VideoError(path, "is already a folder of frames")
    video = decoded_stream(path, size, fps, start, duration)
    # image2 expands % sequences in the whole path: double any % in the folder name.
    pattern = os.path.abspath(folder).replace("%", "%%") + "/%06d" + pattern_suffix
    options = {"q:v": quality} if pattern_suffix == ".jpg" else {}
    out = video.output("file:" + pattern, format="image2", fps_mode="passthrough", start_number=1, **options)
    expected = info.nominal_frames(fps, start, duration)
    done = run_ffmpeg(out, path, work_timeout(expected), "writing the frames", on_frames=on_frames)
    written = sum(1 for p in Path(folder).iterdir() if p.suffix == pattern_suffix)
    judge_decode(path, done.stderr, done.returncode, written, expected, "wrote")
    return written
