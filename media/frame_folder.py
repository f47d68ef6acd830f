"""Folders of numbered frames (any image format OpenCV or ffmpeg reads), read wherever a video is accepted.

Files are taken in natural order (frame2 before frame10) and played at FOLDER_FPS unless a
frame rate is asked for. Example: read_folder("videos/in_frames", size=(64, 64), fps=10)
"""
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np

from media.process import ffmpeg_command, file_url
from utils.errors import VideoError

FOLDER_FPS = 25.0
IMAGE_TIMEOUT_S = 60
# What OpenCV decodes (the rest of what ffmpeg reads, e.g. .tga and .dpx, goes through ffmpeg).
OPENCV_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".ras", ".sr"}
FFMPEG_SUFFIXES = {".tga", ".dpx", ".exr", ".qoi"}
IMAGE_SUFFIXES = OPENCV_SUFFIXES | FFMPEG_SUFFIXES


def natural_key(name):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_frame_file(path):
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_frames(folder):
    """The image files of `folder` in natural order; an error when there are none."""
    files = [p for p in Path(folder).iterdir() if is_frame_file(p)]
    if not files:
        raise VideoError(folder, "folder holds no frames (.png or .jpg files); give a video or a folder of frames")
    return sorted(files, key=lambda p: natural_key(p.name))


def load_image(path):
    """One image as uint8 RGB (H, W, 3); reads through numpy so that any file name works."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise VideoError(path, f"cannot read ({exc.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None and data.size:
        image = cv2.imdecode(_png_through_ffmpeg(path), cv2.IMREAD_COLOR)  # .tga, .dpx, ...: what OpenCV does not read
    if image is None:
        raise VideoError(path, "not an image that OpenCV or ffmpeg can decode; remove it from the folder")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _png_through_ffmpeg(path):
    """The image at `path` re-encoded by ffmpeg as PNG bytes (empty when ffmpeg cannot read it either)."""
    try:
        done = subprocess.run(ffmpeg_command(["-i", file_url(path), "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"]),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=IMAGE_TIMEOUT_S)
    except (subprocess.TimeoutExpired, OSError):
        return np.zeros(0, np.uint8)
    return np.frombuffer(done.stdout, np.uint8) if done.returncode == 0 and done.stdout else np.zeros(0, np.uint8)


def selected_indices(count, fps=None, start=None, duration=None):
    """Which of `count` frames at FOLDER_FPS are shown at `fps`, from `start` for `duration` seconds."""
    times = np.arange(count) / FOLDER_FPS
    first = start or 0.0
    last = count / FOLDER_FPS if duration is None else min(count / FOLDER_FPS, first + duration)
    if fps is None:
        return np.flatnonzero((times >= first - 1e-9) & (times < last - 1e-9))
    n_out = max(0, int(round((last - first) * fps)))
    # The frame on screen at each output time, like ffmpeg's fps filter.
    return np.minimum(np.floor((first + np.arange(n_out) / fps) * FOLDER_FPS + 1e-6).astype(np.int64), count - 1)


def read_folder(folder, size=None, fps=None, start=None, duration=None, chunk_frames=None):
    """Yield uint8 arrays (n, H, W, 3) of at most `chunk_frames` frames (all at once when None)."""
    files = list_frames(folder)
    picks = selected_indices(len(files), fps, start, duration)
    if size is None:
        h, w = load_image(files[0]).shape[:2]
    else:
        w, h = size
    chunk_frames = chunk_frames or max(1, len(picks))
    for begin in range(0, len(picks), chunk_frames):
        part = picks[begin:begin + chunk_frames]
        out = np.empty((len(part), h, w, 3), dtype=np.uint8)
        for i, index in enumerate(part):
            image = load_image(files[index])
            if image.shape[:2] != (h, w):
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            out[i] = image
        yield out
