"""A trained generator over a whole video, written as one side-by-side video (input | generated |
target) and a temporal profile (an x-t slice through the three), with PSNR, SSIM and the temporal
scores (masked warping error, tOF, flicker and seam ratios, per frame pair too) when there is a target. It streams: frames are
decoded, generated and encoded window by window, so memory does not grow with the video's length.
Each output is a sink that takes the aligned chunks (inputs, outputs, targets) as they come.

    model = load_model("checkpoints/unet_sample", device)
    result = compare_model(model, ClipGenerator(model.generator, device), "videos/in.mp4", Outputs("videos/in_compare.mp4"))
"""
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.pairs import parse_pair
from datasets.sources import DerivedSource, InputSource, PairedSource
from inference.sliding import generate_stream
from utils.background import Behind, ahead
from utils.errors import VideoError
from media.encode import VideoWriter
from media.probe import probe
from media.vmaf import vmaf
from utils.images import PROFILE_ROWS, profile_row, save_png, side_by_side, temporal_profile
from utils.metrics import VideoScores
from utils.progress import Progress

COMMENT = "made by vgan compare"


@dataclass(frozen=True)
class Windows:
    """How the generator runs over the video: windows of `pool` frames sharing `overlap` with the
    next, `batch` windows per forward pass; `blend`: frames two windows made are their weighted
    mean (inference/sliding.py)."""

    pool: int
    overlap: int
    batch: int = 4
    blend: bool = True


@dataclass(frozen=True)
class Outputs:
    """What compare writes: the side-by-side video, optionally the generated frames alone, and VMAF."""

    side_by_side: Path
    generated: Path | None = None
    profile: Path | None = None  # the temporal profile PNG
    vmaf: bool = False
    overwrite: bool = False
    quiet: bool = True  # no progress lines


def profile_beside(side_by_side):
    """Where the temporal profile of a comparison goes: NAME_profile.png beside NAME.mp4."""
    side_by_side = Path(side_by_side)
    return side_by_side.with_name(side_by_side.stem + "_profile.png")


def comparison_source(video, target=None, pair=None):
    """Where the frames come from: the video and its aligned target; or, for a model trained on a
    derived pair (gray, blur, ...), the video's derived version as input and the video as target;
    or the video alone."""
    if target is not None:
        source = PairedSource(video, target)
        info, target_info = source.info(video), source.info(target)
        if target_info.frames != info.frames:
            raise VideoError(target, f"has {target_info.frames} frames but {video} has {info.frames}; give the aligned target")
        if (target_info.width, target_info.height) != (info.width, info.height):
            raise VideoError(target, f"is {target_info.width}x{target_info.height} but {video} is {info.width}x{info.height}; "
                                     f"give the aligned target")
        return source
    if pair not in (None, "paired"):
        return DerivedSource(video, parse_pair(pair))
    return InputSource(video)


def check_output(path, inputs, overwrite):
    """Refuse to write over an input, or over a file that vgan compare did not write (unless --overwrite)."""
    path = Path(path)
    if any(path.resolve() == Path(p).resolve() for p in inputs if p):
        raise VideoError(path, "is one of the inputs; choose another output path")
    if path.is_file() and not overwrite:
        try:
            ours = probe(path).comment.startswith(COMMENT)
        except VideoError:
            ours = False
        if not ours:
            raise VideoError(path, "exists and was not written by vgan compare; pass --overwrite to replace it")


class SideBySide:
    def __init__(self, path, fps, audio_from):
        self.writer = VideoWriter(path, fps, audio_from=audio_from, comment=COMMENT)

    def add(self, inputs, outputs, targets, switched=False):
        panels = [("input", inputs), ("generated", outputs)] + ([("target", targets)] if targets is not None else [])
        self.writer.write(side_by_side(panels))


class GeneratedFrames:
    def __init__(self, path, fps):
        self.writer = VideoWriter(path, fps, comment=COMMENT + " (generated)")

    def add(self, inputs, outputs, targets, switched=False):
        self.writer.write(outputs)


class Vmaf:
    """The generated and target frames, encoded to scratch files and scored by libvmaf at the end."""

    def __init__(self, scratch, fps):
        self.paths = Path(scratch) / "generated.mp4", Path(scratch) / "target.mp4"
        self.writers = [VideoWriter(path, fps) for path in self.paths]
        self.score = None

    def add(self, inputs, outputs, targets, switched=False):
        self.writers[0].write(outputs)
        self.writers[1].write(targets)

    def finish(self):
        self.score = vmaf(*self.paths)


class TemporalProfile:
    """The middle image row of the first PROFILE_ROWS frames of input, generated and target, and
    where the window switched: written as one x-t image at the end."""

    def __init__(self, path):
        self.path, self.rows, self.switches, self.frames = path, [], [], 0

    def add(self, inputs, outputs, targets, switched=False):
        if switched:
            self.switches.append(self.frames)
        if self.frames < PROFILE_ROWS:
            keep = PROFILE_ROWS - self.frames
            self.rows.append([profile_row(v[:keep]) for v in (inputs, outputs, targets) if v is not None])
        self.frames += len(inputs)

    def finish(self):
        labels = ("input", "generated", "target")
        panels = [(label, np.concatenate(parts)) for label, *parts in zip(labels, *self.rows)]
        save_png(self.path, temporal_profile(panels, self.switches))


def open_sinks(stack, source, outputs, fps, scratch):
    """The sinks compare feeds, each writer closed (or, on failure, aborted) by `stack`."""
    audio_from = source.paths[0] if source.info(source.paths[0]).has_audio else None
    sinks = [SideBySide(outputs.side_by_side, fps, audio_from)]
    if outputs.generated:
        sinks.append(GeneratedFrames(outputs.generated, fps))
    has_target = not isinstance(source, InputSource)
    if has_target:
        sinks.append(VideoScores())
    if outputs.vmaf and has_target:
        sinks.append(Vmaf(scratch, fps))
    if outputs.profile:
        sinks.append(TemporalProfile(outputs.profile))
    for sink in sinks:
        for writer in [getattr(sink, "writer", None), *getattr(sink, "writers", [])]:
            if writer is not None:
                stack.enter_context(writer)
    return sinks


def compare_video(source, generate, size, windows, outputs):
    """Write the outputs for every frame of `source`; returns {"frames", "fps", "scores", "pairs"},
    "pairs" being [frame, generated's masked warping error, target's, whether the window switched]
    per frame pair when there is a target."""
    check_output(outputs.side_by_side, source.paths, outputs.overwrite)
    if outputs.generated:
        check_output(outputs.generated, [*source.paths, outputs.side_by_side], outputs.overwrite)
    fps = source.info(source.paths[0]).fps
    frames = 0
    progress = Progress(source.expected_frames(), unit="frame", what=f"compare {outputs.side_by_side}", enabled=not outputs.quiet)
    with tempfile.TemporaryDirectory() as scratch:
        with contextlib.ExitStack() as stack:
            sinks = open_sinks(stack, source, outputs, fps, scratch)
            # Scores, panels and encoding run on a thread of their own while the next windows are generated.
            with Behind(lambda chunk: [sink.add(*chunk) for sink in sinks]) as behind:
                # Decoded on a thread of its own too, so that the device never waits for the decoder between windows.
                decoded = ahead(source.chunks(size), depth=2)
                stream = generate_stream(decoded, generate, windows.pool, windows.overlap, windows.batch, windows.blend)
                for chunk in stream:
                    behind.put(chunk)
                    frames += len(chunk.outputs)
                    progress.advance(len(chunk.outputs))
            progress.close()
            if frames == 0:
                raise VideoError(source.paths[0], "gave no frames to compare")
        scores, pairs = {}, []
        for sink in sinks:
            if isinstance(sink, VideoScores):
                scores.update(sink.result())
                pairs = [list(pair) for pair in sink.curve]
            elif isinstance(sink, Vmaf):
                sink.finish()
                scores["vmaf"] = sink.score
            elif isinstance(sink, TemporalProfile):
                sink.finish()
    return {"frames": frames, "fps": fps, "scores": scores, "pairs": pairs}


def compare_model(model, generate, video, outputs, target=None, size=None, windows=None):
    """compare_video for a trained model: at its trained size, in windows of its -pool overlapping by
    half of it, blended, unless told otherwise; on the pair it was trained on. Returns the summary that is kept as JSON."""
    size = size or model.size
    windows = windows or Windows(model.pool, model.pool // 2)
    result = compare_video(comparison_source(video, target, model.pair), generate, size, windows, outputs)
    return {"video": str(video), "target": str(target) if target else None, **model.describe(), "pair": model.pair,
            "size": list(size), "window": windows.pool, "overlap": windows.overlap, "blend": windows.blend,
            "output": str(outputs.side_by_side), "generated": str(outputs.generated) if outputs.generated else None,
            "profile": str(outputs.profile) if outputs.profile else None, **result}


def dry_run(source, generate, size, pool):
    """The first window alone through the generator: its output (1, pool, H, W, 3); nothing is written."""
    first = next(iter(source.chunks(size)))[0][:pool]
    clip = first[np.minimum(np.arange(pool), len(first) - 1)][None]  # a short video's last frame repeated
    return generate(clip)
