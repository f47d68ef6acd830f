"""Per-epoch pictures of the validation clips in an experiment's samples/ folder: a PNG grid of one
clip (input / generated / target rows), the same clip as strips for the comparison page, a
temporal profile of the validation windows one after another (each switch between windows marked),
and a short side-by-side video of the whole validation part.

    write_samples("checkpoints/unet_sample", epoch=3, clips=(inputs, outputs, targets), fps=25, log=log)
"""
from runfolder.layout import CLIP_ROLES, RunFolder
from utils.errors import VideoError, warn
from utils.fsio import make_folder
from media.encode import write_video
from utils.images import PROFILE_ROWS, clip_grid, frame_strip, profile_row, save_png, side_by_side, temporal_profile


def write_samples(folder, epoch, clips, fps, log, labels=("input", "generated", "target"), more=()):
    """Per-epoch pictures of one validation clip (PNG grid: input / generated / target rows) and a
    short side-by-side video of the whole validation part. An unpaired run's clips are input /
    translated / brought back, with `labels` to say so, and `more` rows for the grid: (label, clip)."""
    inputs, outputs, targets = clips  # uint8 (N, T, H, W, 3) each
    folder = RunFolder(folder)
    make_folder(folder.samples)
    grid = clip_grid([*zip(labels, (inputs[0], outputs[0], targets[0])), *more])
    save_png(folder.sample_grid(epoch), grid)
    log.image("samples/grid", grid, epoch)
    # The same clip as unlabelled strips, for the page that puts runs side by side.
    for role, frames in zip(CLIP_ROLES, (inputs[0], outputs[0], targets[0])):
        save_png(folder.clip_strip(role), frame_strip(frames))
    flat = lambda clip: clip.reshape((-1,) + clip.shape[2:])  # noqa: E731 - windows in time order
    clip_frames = inputs.shape[1]
    rows = [(label, profile_row(flat(v[: -(-PROFILE_ROWS // clip_frames)]))) for label, v in zip(labels, (inputs, outputs, targets))]
    save_png(folder.sample_profile(epoch), temporal_profile(rows, switches=range(clip_frames, len(rows[0][1]), clip_frames)))
    frames = side_by_side(list(zip(labels, (flat(inputs), flat(outputs), flat(targets)))))
    try:
        write_video(frames, folder.sample_video(epoch), fps=fps)
    except (OSError, VideoError) as exc:  # a sample video is a convenience; training goes on without it
        warn(folder.samples, f"could not write the sample video ({exc})")
