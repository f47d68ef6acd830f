"""VMAF, the one score that ffmpeg computes (through its optional libvmaf filter); the scores vgan
computes itself are in metrics/scores.py.
    vmaf("generated.mp4", "target.mp4")     # -> 87.3
"""
import re

from media import ffmpeg_graph as ffmpeg

from media.probe import probe
from media.process import ffmpeg_reason, file_url, has_filter, run_ffmpeg, work_timeout
from utils.errors import VideoError

VMAF_MIN_SIDE = 64


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
        raise VideoError(distorted, f"libvmaf gave no score ({ffmpeg_reason(done.stderr, file_url(distorted))})")
    return float(found.group(1))
