"""Where the shots of a video begin, by ffmpeg's scene score (the `select` filter's `scene`: how
much a frame differs from the one before, beyond the change between the two before, 0 to 1), so
that build-dataset --test-shots can hold out whole shots. The frames come in as decoded chunks,
so a video and a folder of frames are scored alike, at the size the dataset keeps.

    shots(chunks, fps=25, path="in.mp4")      # [(0, 120), (120, 301), (301, 400)]: every shot's frames
"""
import re
import tempfile
from pathlib import Path

import numpy as np

from media import ffmpeg_graph as ffmpeg
from media.process import FfmpegPipe, ffmpeg_reason
from utils.errors import VideoError

SCENE_THRESHOLD = 0.3  # ffmpeg's documentation's example for shot changes; a hard cut scores near 1
MIN_SHOT_FRAMES = 5  # a cut closer than this to the last is a flash or fast motion, not a new shot


def scene_scores(chunks, fps, path):
    """ffmpeg's scene score of every frame of `chunks` (uint8 (n, H, W, 3) arrays), as one array;
    `path` names the footage in errors."""
    with tempfile.TemporaryDirectory(prefix="vgan-shots-") as scratch:
        record = Path(scratch) / "scores.txt"
        pipe, broke = None, False
        for chunk in chunks:
            if pipe is None:
                height, width = chunk.shape[1:3]
                graph = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps).video
                         .filter("select", "gte(scene,0)")
                         .filter("metadata", "print", key="lavfi.scene_score", file=str(record))
                         .output("-", format="null"))
                pipe = FfmpegPipe(graph, path, reads=True)
            try:
                pipe.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
            except (BrokenPipeError, ValueError):  # ffmpeg ended, or was stopped for making no progress: its reason below
                broke = True
                break
        if pipe is None:
            return np.zeros(0)
        code, text = pipe.finish()
        if code != 0 or broke or not record.exists():
            raise VideoError(path, f"ffmpeg could not score its shots ({ffmpeg_reason(text, str(path))})")
        return np.array([float(v) for v in re.findall(r"lavfi\.scene_score=([0-9.]+)", record.read_text())])


def shots(chunks, fps, path, threshold=SCENE_THRESHOLD, min_frames=MIN_SHOT_FRAMES):
    """[(start, stop)] of every shot of `chunks`: a shot begins at frame 0 and at every frame whose
    scene score passes `threshold` at least `min_frames` after the last start."""
    scores = scene_scores(chunks, fps, path)
    starts = [0]
    for frame, score in enumerate(scores):
        if score > threshold and frame - starts[-1] >= min_frames:
            starts.append(frame)
    return [(start, stop) for start, stop in zip(starts, starts[1:] + [len(scores)]) if stop > start]
