"""What a video or a folder of frames holds, before anything is decoded: `probe` reads every
packet of a video's stream (the exact frame count, without decoding) and lists a frame folder.
    info = probe("videos/in.mp4"); info.width, info.height, info.fps, info.frames, info.has_audio
"""
import re
from dataclasses import dataclass
from pathlib import Path

from media import process
from media.process import ffmpeg_reason, file_url, run_ffmpeg
from utils.errors import VideoError


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
    comment: str = ""  # the container's comment tag (vgan marks the videos it writes)
    is_folder = False

    def frames_at(self, fps=None, start=None, duration=None):
        """How many frames a decode with these options yields (exact for CFR input)."""
        if fps is None and start is None and duration is None:
            return self.frames
        return self.nominal_frames(fps, start, duration)

    def nominal_frames(self, fps=None, start=None, duration=None):
        """How many frames the container's duration promises (more than `frames` in a truncated file)."""
        available = max(0.0, self.duration - (start or 0.0))
        seconds = available if duration is None else min(duration, available)
        return int(round(seconds * (fps or self.fps)))


@dataclass(frozen=True)
class FolderInfo(VideoInfo):
    """What `probe` finds in a folder of numbered frames, played at FOLDER_FPS."""

    is_folder = True

    def frames_at(self, fps=None, start=None, duration=None):
        from media.frame_folder import selected_indices

        return len(selected_indices(self.frames, fps, start, duration))


def probe_folder(folder):
    from media.frame_folder import FOLDER_FPS, list_frames, load_image

    files = list_frames(folder)
    h, w = load_image(files[0]).shape[:2]
    return FolderInfo(str(folder), w, h, FOLDER_FPS, len(files), len(files) / FOLDER_FPS, 0, True, False)


def probe(path):
    """Width, height, fps, frame count, duration, rotation and streams of a video or frame folder."""
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "no such file or folder")
    if p.is_dir():
        return probe_folder(p)
    if p.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes); it holds no video")
    url = file_url(path)
    # Copying the stream to nowhere reads every packet: the exact frame count, without decoding.
    text = run_ffmpeg(["-i", url, "-map", "0:v:0?", "-c", "copy", "-f", "null", "-"], path, process.PROBE_TIMEOUT_S,
                      "reading the file", verbosity="info").stderr
    head = text.split("Stream mapping:")[0].split("Output #0")[0]
    if "Input #0" not in head:
        raise VideoError(path, f"not a video ffmpeg can read ({ffmpeg_reason(text, url)}); check the file or re-encode it")
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
        raise VideoError(path, f"has a video stream but no frames could be read ({ffmpeg_reason(text, url)}); the file may be truncated")
    comment = re.search(r"^\s*comment\s*:\s*(.*)$", head, re.MULTILINE)
    return VideoInfo(str(path), width, height, fps, frames, duration, rotation, True, has_audio,
                     comment=comment.group(1).strip() if comment else "")


def _rotation(head):
    found = re.search(r"rotation of (-?[\d.]+) degrees", head) or re.search(r"rotate\s*:\s*(-?\d+)", head)
    return int(round(float(found.group(1)))) % 360 if found else 0
