"""A trained generator over a whole video, written as one side-by-side video (input | generated |
target) with PSNR, SSIM and temporal warping error when there is a target. It streams: frames are
decoded, generated and encoded window by window, so memory does not grow with the video's length.
    compare_video("videos/in.mp4", checkpoint="checkpoints/unet_sample", output="videos/in_compare.mp4", device=cpu)
"""
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datasets.slider import to_model_input
from datasets.store import derived_chunks, paired_chunks
from inference.loader import load_generator
from inference.sliding import generate_stream
from training.validate import to_uint8_frames
from utils.checkpoint import resolve_checkpoint
from utils.device import autocast, resolve_amp
from utils.errors import UsageError, VideoError
from utils.ffmpeg import VideoWriter, iter_frames, probe, vmaf
from utils.fsio import write_json_atomic
from utils.images import side_by_side
from utils.metrics import VideoScores
from utils.report import write_report

COMMENT = "made by vgan compare"


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


def padded_generator(generator, device, amp):
    """uint8 clips (B, T, H, W, 3) -> generated uint8 clips; frames whose sides are not multiples of
    what the network needs are padded (edge pixels repeated) and cropped back."""
    multiple = generator.size_multiple

    @torch.no_grad()
    def generate(clips):
        x = to_model_input(clips, device)  # (N, C, T, H, W)
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % multiple, 0, -h % multiple, 0, 0), mode="replicate")
        with autocast(device, amp):
            fake = generator(x)[..., :h, :w]
        return to_uint8_frames(fake)

    return generate


def compare_video(video, *, checkpoint, output, device, target=None, size=None, overlap=None, batch=4,
                  save_generated=None, amp=False, with_vmaf=False, overwrite=False, dry_run=False):
    """Write the side-by-side video (and its scores as JSON beside it); return a summary dict."""
    generator, state = load_generator(checkpoint, device)
    amp = resolve_amp(amp, device)
    trained = state.get("dataset") or {}
    pool = state["config"]["pool"]
    overlap = pool // 2 if overlap is None else overlap
    if overlap >= pool:
        raise UsageError(f"argument --overlap: must be below the trained -pool ({pool})")
    size = size or (trained.get("width", 64), trained.get("height", 64))
    info = probe(video)
    derived = target is None and trained.get("pair") not in (None, "paired")
    if target is not None:
        target_info = probe(target)
        if target_info.frames != info.frames:
            raise VideoError(target, f"has {target_info.frames} frames but {video} has {info.frames}; give the aligned target")
        if (target_info.width, target_info.height) != (info.width, info.height):
            raise VideoError(target, f"is {target_info.width}x{target_info.height} but {video} is {info.width}x{info.height}; "
                                     f"give the aligned target")
        pairs = paired_chunks(video, target, size, infos={video: info, target: target_info})
    elif derived:
        pairs = derived_chunks(video, size, trained["pair"], info=info)  # the input is derived, the video is the target
    else:
        pairs = ((chunk, None) for chunk in iter_frames(video, size=size, info=info))
    generate = padded_generator(generator, device, amp)
    if dry_run:  # the first window alone, as a batch; no output is opened
        first = next(iter(pairs))[0][:pool]
        clip = first[np.minimum(np.arange(pool), len(first) - 1)][None]  # (1, pool, H, W, 3)
        out = generate(clip)
        print(f"dry run: generated a window of {out.shape[1]} frames at {out.shape[3]}x{out.shape[2]} from {video}; nothing written")
        return {"frames": out.shape[1]}
    check_output(output, [video, target], overwrite)
    if save_generated:
        check_output(save_generated, [video, target, output], overwrite)
    has_target = target is not None or derived
    scores = VideoScores() if has_target else None
    frames = 0
    with tempfile.TemporaryDirectory() as scratch:
        writers = []
        try:
            writer = VideoWriter(output, info.fps, audio_from=video if info.has_audio else None, comment=COMMENT)
            writers.append(writer)
            generated_path = save_generated or (Path(scratch) / "generated.mp4" if with_vmaf else None)
            generated_writer = VideoWriter(generated_path, info.fps, comment=COMMENT + " (generated)") if generated_path else None
            target_writer = VideoWriter(Path(scratch) / "target.mp4", info.fps) if with_vmaf and has_target else None
            writers += [w for w in (generated_writer, target_writer) if w]
            for inputs, outputs, targets in generate_stream(pairs, generate, pool, overlap, batch):
                panels = [("input", inputs), ("generated", outputs)] + ([("target", targets)] if targets is not None else [])
                writer.write(side_by_side(panels))
                if generated_writer:
                    generated_writer.write(outputs)
                if target_writer:
                    target_writer.write(targets)
                if scores is not None:
                    scores.add(inputs, outputs, targets)
                frames += len(outputs)
            if frames == 0:
                raise VideoError(video, "gave no frames to compare")
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        result = scores.result() if scores is not None else {}
        if with_vmaf and has_target:
            result["vmaf"] = vmaf(generated_path, Path(scratch) / "target.mp4")
    return {"video": str(video), "target": str(target) if target else None, "checkpoint": str(resolve_checkpoint(checkpoint)),
            "step": state["step"], "pair": trained.get("pair"), "frames": frames, "fps": info.fps, "size": list(size),
            "pool": pool, "overlap": overlap, "output": str(output), "generated": str(save_generated) if save_generated else None,
            "scores": result}


def save_comparison(result, output):
    """The scores as JSON beside the video, and, for a checkpoint in an experiment folder, the
    latest comparison recorded there for its report."""
    output = Path(output)
    if result["scores"]:
        write_json_atomic(output.with_suffix(".json"), result)
    folder = Path(result["checkpoint"]).parent
    if (folder / "config.json").exists():
        write_json_atomic(folder / "compare.json", {**result, "output": str(output.resolve())})
        write_report(folder)
