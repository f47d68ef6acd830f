"""A trained generator over a whole video, written as one side-by-side video (input | generated |
target) and a temporal profile (an x-t slice through the three), with PSNR, SSIM and the temporal
scores (masked warping error, tOF, flicker and seam ratios, per frame pair too) when there is a target,
and the perceptual ones asked for by name (JOD, LPIPS, tLP, FVD, KID: metrics/). It streams: frames are
decoded, generated and encoded window by window, so memory does not grow with the video's length.
Each output is a sink that takes the aligned chunks (inputs, outputs, targets) as they come.

    model = load_model("checkpoints/unet_sample", device)
    result = compare_model(model, ClipGenerator(model.generator, device), "videos/in.mp4", Outputs("videos/in_compare.mp4"))

An unpaired model's translation has no target: it is brought back by the generator the other way
(a second pass of windows over the translated stream) and written as input | translated | back,
scored by the round trip's PSNR and SSIM, and by its warping error under the input's own motion
(flicker ratio 1: as steady as the input); an aligned --target adds PSNR and SSIM against it.
"""
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from datasets.pairs import TWO_VIDEOS, UNPAIRED, parse_pair
from datasets.sources import DerivedSource, InputSource, PairedSource
from inference.sliding import generate_stream
from utils.background import Behind, ahead
from media.encode import VideoWriter
from media.probe import probe
from media.vmaf import vmaf
from utils.images import PROFILE_ROWS, profile_row, save_png, side_by_side, temporal_profile
from metrics import METRICS, code_of, displays
from metrics.frames import uploaded
from metrics.jod import FrameCountError
from metrics.scores import PSNR_CAP_DB, VideoScores, psnr, ssim
from utils.errors import VideoError, warn
from utils.progress import Progress

COMMENT = "made by vgan compare"


@dataclass(frozen=True)
class Windows:
    """How the generator runs over the video: windows of `length` frames sharing `overlap` with the
    next, `batch` windows per forward pass; `blend`: frames two windows made are their weighted
    mean (inference/sliding.py)."""

    length: int
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
    metrics: tuple = ()  # the scores asked for by name (--metrics): metrics/__init__.py's `stream`s
    metric_weights: str | None = None  # where the learned metrics' backbone weights are (--metric-weights)
    device: str = "cpu"  # where the perceptual scores compute
    metric_memory: float | None = None  # bytes the perceptual scores may take on a GPU, all together (None: no cap)


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
    if pair not in (None, TWO_VIDEOS, UNPAIRED):
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


class RoundTrip(NamedTuple):
    """Frames of an unpaired model's comparison, uint8 (n, H, W, 3) each: the input, its translation,
    the translation brought back, and the aligned target (or None)."""

    inputs: np.ndarray
    outputs: np.ndarray
    targets: np.ndarray | None
    switched: bool
    back: np.ndarray


def panels_of(chunk):
    """[(label, frames)] of a chunk, in the order the side-by-side video and the profile show them."""
    if isinstance(chunk, RoundTrip):
        named = [("input", chunk.inputs), ("translated", chunk.outputs), ("back", chunk.back), ("target", chunk.targets)]
    else:
        named = [("input", chunk.inputs), ("generated", chunk.outputs), ("target", chunk.targets)]
    return [(label, frames) for label, frames in named if frames is not None]


class Sink:
    """What compare feeds every chunk to (`add`), and asks at the end to add what it found to the
    result (`finish`: scores, frame pairs); a sink's `writer` or `writers` are closed by compare."""

    def add(self, chunk):
        raise NotImplementedError

    def finish(self, result):
        pass


class SideBySide(Sink):
    def __init__(self, path, fps, audio_from):
        self.writer = VideoWriter(path, fps, audio_from=audio_from, comment=COMMENT)

    def add(self, chunk):
        self.writer.write(side_by_side(panels_of(chunk)))


class GeneratedFrames(Sink):
    def __init__(self, path, fps):
        self.writer = VideoWriter(path, fps, comment=COMMENT + " (generated)")

    def add(self, chunk):
        self.writer.write(chunk.outputs)


class Vmaf(Sink):
    """The generated and target frames (of a round trip: the frames brought back, and the input),
    encoded to scratch files and scored by libvmaf at the end."""

    def __init__(self, scratch, fps):
        self.paths = Path(scratch) / "generated.mp4", Path(scratch) / "target.mp4"
        self.writers = [VideoWriter(path, fps) for path in self.paths]

    def add(self, chunk):
        made, reference = (chunk.back, chunk.inputs) if isinstance(chunk, RoundTrip) else (chunk.outputs, chunk.targets)
        self.writers[0].write(made)
        self.writers[1].write(reference)

    def finish(self, result):
        result["scores"]["vmaf"] = vmaf(*self.paths)


class TemporalProfile(Sink):
    """The middle image row of the first PROFILE_ROWS frames of each panel (input, generated and
    target), and where the window switched: written as one x-t image at the end."""

    def __init__(self, path):
        self.path, self.rows, self.switches, self.frames, self.labels = path, [], [], 0, None

    def add(self, chunk):
        if chunk.switched:
            self.switches.append(self.frames)
        if self.frames < PROFILE_ROWS:
            keep = PROFILE_ROWS - self.frames
            panels = panels_of(chunk)
            self.labels = [label for label, _ in panels]
            # A copy: a row is a view that would keep its chunk's whole frames alive until the end.
            self.rows.append([profile_row(frames[:keep]).copy() for _, frames in panels])
        self.frames += len(chunk.inputs)

    def finish(self, result):
        panels = [(label, np.concatenate(parts)) for label, *parts in zip(self.labels, *self.rows)]
        save_png(self.path, temporal_profile(panels, self.switches))


class Scores(Sink):
    """A paired model's scores against the target (metrics/scores.py's VideoScores)."""

    def __init__(self):
        self.scores = VideoScores()

    def add(self, chunk):
        self.scores.add(chunk.inputs, chunk.outputs, chunk.targets, chunk.switched)

    def finish(self, result):
        result["scores"].update(self.scores.result())
        result["pairs"] = [list(pair) for pair in self.scores.curve]


class RoundTripScores(Sink):
    """An unpaired model's scores: PSNR and SSIM of the frames brought back against the input; the
    translation's masked warping error and tOF under the input's motion, next to the input's own
    (flicker ratio), with the seam ratio; and with a target, PSNR and SSIM against it, next to the
    input's (the identity)."""

    def __init__(self, has_target):
        self.steadiness = VideoScores()  # the input stands as the target: its flow is the motion the output should follow
        self.sums, self.frames, self.has_target = {}, 0, has_target

    def _add(self, name, values):
        self.sums[name] = self.sums.get(name, 0.0) + float(np.minimum(values, PSNR_CAP_DB).sum())

    def add(self, chunk):
        self.steadiness.add(chunk.inputs, chunk.outputs, chunk.inputs, chunk.switched)
        self._add("cycle_psnr", psnr(chunk.back, chunk.inputs))
        self._add("cycle_ssim", ssim(chunk.back, chunk.inputs))
        if self.has_target:
            for name, made in (("", chunk.outputs), ("_identity", chunk.inputs)):
                self._add("psnr" + name, psnr(made, chunk.targets))
                self._add("ssim" + name, ssim(made, chunk.targets))
        self.frames += len(chunk.inputs)

    def finish(self, result):
        temporal = self.steadiness.result()
        scores = {name: total / self.frames for name, total in self.sums.items()}
        scores.update({name: temporal[name] for name in ("masked_warp_error", "tof", "flicker", "seam") if name in temporal})
        scores["masked_warp_error_input"] = temporal["masked_warp_error_target"]
        result["scores"].update(scores)
        result["pairs"] = [list(pair) for pair in self.steadiness.curve]


class RequestedScores(Sink):
    """The scores asked for by name (--metrics: JOD, LPIPS, ...), each of the generated video (of a
    round trip: the translation) and of the identity (the input taken as the answer) against the
    target, streamed as the frames come (metrics/__init__.py's `stream`s)."""

    def __init__(self, metrics, frames, fps, device, weights, memory=None):
        # The streams share `memory` (what compare keeps beside the generator's own), two per metric.
        each = memory / (2 * len(metrics)) if memory and metrics else None
        self.streams = {name: [code_of(name, "stream")(frames, fps, device, weights, each) for _ in range(2)] for name in metrics}
        self.device = device

    def add(self, chunk):
        # Each chunk goes to the device once (pinned, without blocking, on a GPU), for every stream.
        outputs, inputs, targets = (uploaded(frames, self.device) for frames in (chunk.outputs, chunk.inputs, chunk.targets))
        for made, identity in self.streams.values():
            made.add(outputs, targets)
            identity.add(inputs, targets)

    def finish(self, result):
        for name, streams in self.streams.items():
            try:
                (value, curve), (identity, identity_curve) = (stream.result() for stream in streams)
            except FrameCountError as exc:  # never a number for what could not be scored whole
                warn(result["source"], f"{exc}: its {name} is left out")
                continue
            result["scores"].update({name: value, f"{name}_identity": identity})
            if curve is not None:
                result.setdefault("curves", {})[name] = [[frame, *values] for frame, values in enumerate(zip(curve, identity_curve))]
        result.update(displays(self.streams))


class MiddleFrame(Sink):
    """The generated frame (of a round trip: the translation) at `frame`, its middle `side` x `side`
    pixels at most, saved as a PNG: the same crop from every model, side by side on the verdict page."""

    def __init__(self, path, frame, side=128):
        self.path, self.frame, self.side, self.seen = path, frame, side, 0

    def add(self, chunk):
        if self.seen <= self.frame < self.seen + len(chunk.outputs):
            image = chunk.outputs[self.frame - self.seen]
            top, left = max(0, (image.shape[0] - self.side) // 2), max(0, (image.shape[1] - self.side) // 2)
            save_png(self.path, image[top:top + self.side, left:left + self.side])
        self.seen += len(chunk.outputs)


def open_sinks(stack, source, outputs, fps, scratch, round_trip=False):
    """The sinks compare feeds, each writer closed (or, on failure, aborted) by `stack`."""
    audio_from = source.paths[0] if source.info(source.paths[0]).has_audio else None
    sinks = [SideBySide(outputs.side_by_side, fps, audio_from)]
    if outputs.generated:
        sinks.append(GeneratedFrames(outputs.generated, fps))
    has_target = not isinstance(source, InputSource)
    if round_trip:
        sinks.append(RoundTripScores(has_target))
    elif has_target:
        sinks.append(Scores())
    if outputs.metrics:
        sinks.append(RequestedScores(outputs.metrics, source.expected_frames(), fps, outputs.device, outputs.metric_weights,
                                     outputs.metric_memory))
    if outputs.vmaf and (has_target or round_trip):
        sinks.append(Vmaf(scratch, fps))
    if outputs.profile:
        sinks.append(TemporalProfile(outputs.profile))
    for sink in sinks:
        for writer in [getattr(sink, "writer", None), *getattr(sink, "writers", [])]:
            if writer is not None:
                stack.enter_context(writer)
    return sinks


def round_trip(stream, back, windows):
    """Chunks of `stream` with the translation brought back by `back`, a second pass of windows at
    the same places over the translated frames: RoundTrip chunks, in order."""
    def translated():  # the input (and target) ride along as the second pass's "target", a frame each
        for chunk in stream:
            riders = [chunk.inputs] + ([chunk.targets] if chunk.targets is not None else [])
            yield chunk.outputs, np.concatenate(riders, axis=-1)

    for chunk in generate_stream(translated(), back, windows.length, windows.overlap, windows.batch, windows.blend):
        inputs, targets = chunk.targets[..., :3], chunk.targets[..., 3:] if chunk.targets.shape[-1] > 3 else None
        yield RoundTrip(inputs, chunk.inputs, targets, chunk.switched, chunk.outputs)


def feed(chunks, generate, windows, sinks, back=None, progress=None):
    """Generate over `chunks` ((inputs, targets) uint8 arrays) in `windows` and hand every aligned chunk
    to every sink; returns how many frames were generated. `back`: an unpaired model's generator the
    other way, which brings each translation back."""
    frames = 0
    # Scores, panels and encoding run on a thread of their own while the next windows are generated.
    with Behind(lambda chunk: [sink.add(chunk) for sink in sinks]) as behind:
        # Decoded on a thread of its own too, so that the device never waits for the decoder between windows.
        stream = generate_stream(ahead(chunks, depth=2), generate, windows.length, windows.overlap, windows.batch, windows.blend)
        if back is not None:
            stream = round_trip(stream, back, windows)
        for chunk in stream:
            behind.put(chunk)
            frames += len(chunk.outputs)
            if progress is not None:
                progress.advance(len(chunk.outputs))
    return frames


def score_frames(generate, inputs, targets, windows, metrics=(), fps=25, device="cpu", weights=None, back=None,
                 profile=None, middle=None, chunk_frames=64, memory=None):
    """The scores of a model over one clip held in memory (uint8 (n, H, W, 3) inputs and targets;
    an unpaired model's targets are None and it is scored by its round trip), as compare scores a
    video, with the `metrics` asked for by name; nothing is written but, when given, the temporal
    `profile` PNG and the `middle` frame's crop PNG. `memory`: bytes the perceptual scores may take on a GPU."""
    def chunks():  # copies: the clip may be a read-only memory map, and the scores' tensors are made from these
        for start in range(0, len(inputs), chunk_frames):
            yield np.array(inputs[start:start + chunk_frames]), None if targets is None else np.array(targets[start:start + chunk_frames])

    sinks = [RoundTripScores(has_target=False) if back is not None else Scores()]
    if metrics:
        sinks.append(RequestedScores(metrics, len(inputs), fps, device, weights, memory))
    if profile:
        sinks.append(TemporalProfile(profile))
    if middle:
        sinks.append(MiddleFrame(middle, len(inputs) // 2))
    feed(chunks(), generate, windows, sinks, back)
    result = {"frames": len(inputs), "fps": fps, "scores": {}, "pairs": [], "source": "a test clip"}
    for sink in sinks:
        sink.finish(result)
    return result["scores"]


def compare_video(source, generate, size, windows, outputs, back=None):
    """Write the outputs for every frame of `source`; returns {"frames", "fps", "scores", "pairs"},
    "pairs" being [frame, generated's masked warping error, target's (the input's, for a round
    trip), whether the window switched] per frame pair when there is a target. `back`: an unpaired
    model's generator the other way, which brings each translation back."""
    check_output(outputs.side_by_side, source.paths, outputs.overwrite)
    needing = [name for name in outputs.metrics if "target" in METRICS[name].needs]
    if needing and isinstance(source, InputSource):
        raise VideoError(source.paths[0], f"has no target to score {', '.join(needing)} against; give the aligned "
                                          f"--target (a model trained on two videos or unpaired has none of its own)")
    if outputs.generated:
        check_output(outputs.generated, [*source.paths, outputs.side_by_side], outputs.overwrite)
    fps = source.info(source.paths[0]).fps
    progress = Progress(source.expected_frames(), unit="frame", what=f"compare {outputs.side_by_side}", enabled=not outputs.quiet)
    with tempfile.TemporaryDirectory() as scratch:
        with contextlib.ExitStack() as stack:
            sinks = open_sinks(stack, source, outputs, fps, scratch, round_trip=back is not None)
            frames = feed(source.chunks(size), generate, windows, sinks, back, progress)
            progress.close()
            if frames == 0:
                raise VideoError(source.paths[0], "gave no frames to compare")
        result = {"frames": frames, "fps": fps, "scores": {}, "pairs": [], "source": str(source.paths[0])}
        for sink in sinks:
            sink.finish(result)
    return result


def compare_model(model, generate, video, outputs, target=None, size=None, windows=None, back=None):
    """compare_video for a trained model: at its trained size, in windows of its -pool overlapping by
    half of it, blended, unless told otherwise; on the pair it was trained on (an unpaired model's
    translation brought back by `back`). Returns the summary that is kept as JSON."""
    size = size or model.size
    windows = windows or Windows(model.clip_frames, model.clip_frames // 2)
    result = compare_video(comparison_source(video, target, model.pair), generate, size, windows, outputs, back)
    return {"video": str(video), "target": str(target) if target else None, **model.describe(), "pair": model.pair,
            "size": list(size), "window": windows.length, "overlap": windows.overlap, "blend": windows.blend,
            "output": str(outputs.side_by_side), "generated": str(outputs.generated) if outputs.generated else None,
            "profile": str(outputs.profile) if outputs.profile else None,
            "scored_on": outputs.device, **result}  # a GPU's convolutions (TF32) score a little apart from a CPU's


def dry_run(source, generate, size, length):
    """The first window alone through the generator: its output (1, length, H, W, 3); nothing is written."""
    first = next(iter(source.chunks(size)))[0][:length]
    clip = first[np.minimum(np.arange(length), len(first) - 1)][None]  # a short video's last frame repeated
    return generate(clip)
