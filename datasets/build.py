"""Building a dataset folder from pair sources: frames are decoded in chunks and appended to the
arrays on disk, so building needs little memory whatever the length; the folder appears whole or not at all.

    build_dataset("data/sample_gray", [DerivedSource("videos/sample.mp4", parse_pair("gray"))], Size(64, 64))
    build_unpaired("data/day_night", ["videos/day.mp4"], ["videos/night1.mp4", "videos/night2.mp4"], Size(64, 64))
"""
import shutil
from pathlib import Path

import numpy as np

from datasets.flow import BYTES_PER_PIXEL as FLOW_BYTES_PER_PIXEL, has_flow, write_flow
from datasets.pairs import TWO_VIDEOS, UNPAIRED, parse_pair
from datasets.sources import DerivedSource, InputSource, PairedSource
from media.frame_folder import is_frame_file, natural_key
from datasets.store import FORMAT_VERSION, NpyAppender, check_fits_in_memory, frame_counts, is_unpaired, segments_of, write_meta
from utils.errors import DatasetError
from utils.fsio import ensure_parent, staged_dir
from utils.memory import human_bytes
from metrics.scores import PSNR_CAP_DB, psnr
from utils.progress import Progress


def derived_sources(videos, pair, seed=0):
    """One DerivedSource per video, sharing a seeded random generator (for the noise pair)."""
    rng = np.random.default_rng(seed)
    return [DerivedSource(video, parse_pair(pair), rng) for video in videos]


def paired_sources(pairs, trim=False):
    return [PairedSource(a, b, trim) for a, b in pairs]


def is_sequence_folder(path):
    """A folder of sequences (REDS, Vimeo-90K, DAVIS, GoPro): subfolders, and no frames of its own."""
    path = Path(path)
    return path.is_dir() and not any(is_frame_file(p) for p in path.iterdir()) and any(p.is_dir() for p in path.iterdir())


def sequence_pairs(a_root, b_root, parts=None):
    """[(A folder, B folder)] of two folders of sequences, matched by name, one segment each: each
    subfolder of `a_root` holds one sequence's frames, as does its namesake in `b_root`. With
    `parts` (A_NAME, B_NAME), as in GoPro's blur/sharp, each sequence folder holds its A frames in
    A_NAME and its B frames in B_NAME, and `b_root` may be `a_root`. Names that do not match are refused."""
    def sequences(root):
        return {p.name: p for p in sorted(Path(root).iterdir(), key=lambda p: natural_key(p.name)) if p.is_dir()}

    a_seqs, b_seqs = sequences(a_root), sequences(b_root)
    only_a, only_b = sorted(set(a_seqs) - set(b_seqs)), sorted(set(b_seqs) - set(a_seqs))
    if only_a or only_b:
        missing = "; ".join(part for part in (only_a and f"only in {a_root}: {', '.join(only_a[:5])}",
                                              only_b and f"only in {b_root}: {', '.join(only_b[:5])}") if part)
        raise DatasetError(a_root, f"its sequences do not match those of {b_root} by name ({missing})")
    if parts is None:
        return [(a_seqs[name], b_seqs[name]) for name in a_seqs]
    pairs = [(a_seqs[name] / parts[0], b_seqs[name] / parts[1]) for name in a_seqs]
    for folder in (folder for pair in pairs for folder in pair):
        if not folder.is_dir():
            raise DatasetError(folder, f"no such folder: every sequence needs its {parts[0]}/ and {parts[1]}/ frames")
    return pairs


def pair_name(sources):
    return str(sources[0].pair) if isinstance(sources[0], DerivedSource) else TWO_VIDEOS


def check_room(out, expected, size, mmap, sides=2, flow=False):
    """Refuse, before decoding, a dataset that will not fit in memory (unless `mmap`) or on disk:
    `expected` frames on each of `sides` arrays (an unpaired dataset's sides sum to one, on average),
    and with `flow` the target's stored flow."""
    nbytes = int(expected * size.height * size.width * (sides * 3 + (FLOW_BYTES_PER_PIXEL if flow else 0)))
    if not mmap:
        check_fits_in_memory(nbytes, out, what=f"training on this dataset ({expected} frames of {size})")
    parent = ensure_parent(out)
    if shutil.disk_usage(parent).free < nbytes:
        raise DatasetError(out, f"needs {human_bytes(nbytes)} on disk but {parent} has {human_bytes(shutil.disk_usage(parent).free)} free")


def build_dataset(out, sources, size, fps=None, val_fraction=0.1, mmap=False, overwrite=False, quiet=True, flow=True):
    """Decode `sources` into the dataset folder `out` and return its meta dict. Each source becomes
    one segment, and the last `val_fraction` of each is held out for validation. meta.json also
    records the identity PSNR (the input taken as the answer) of the training and validation parts.
    With `flow` (the default), the target's optical flow is stored too (datasets/flow.py), for the
    temporal loss; without it, train leaves that loss off."""
    expected = sum(source.expected_frames(fps) for source in sources)
    check_room(out, expected, size, mmap, flow=flow)
    segments, identity = [], {"train": [], "val": []}
    progress = Progress(expected, unit="frame", what=f"building {out}", enabled=not quiet)
    with staged_dir(out, overwrite=overwrite, what="dataset folder") as tmp:
        arrays = NpyAppender(tmp / "a.npy", (size.height, size.width, 3)), NpyAppender(tmp / "b.npy", (size.height, size.width, 3))
        for source in sources:
            start, scores = arrays[0].count, []
            for chunk_a, chunk_b in source.chunks(size, fps):
                arrays[0].append(chunk_a)
                arrays[1].append(chunk_b)
                scores.append(np.minimum(psnr(chunk_a, chunk_b), PSNR_CAP_DB))
                progress.advance(len(chunk_a))
            stop = arrays[0].count
            n_val = int(round((stop - start) * val_fraction))
            segments.append({**source.meta(), "start": start, "stop": stop, "val_start": stop - n_val})
            scores = np.concatenate(scores) if scores else np.zeros(0)
            identity["train"].append(scores[:len(scores) - n_val])
            identity["val"].append(scores[len(scores) - n_val:])
        for array in arrays:
            array.close()
        progress.close()
        meta = {
            "version": FORMAT_VERSION, "frames": arrays[0].count, "width": size.width, "height": size.height,
            "fps": fps if fps is not None else sources[0].info(sources[0].paths[0]).fps, "pair": pair_name(sources),
            "val_fraction": val_fraction, "segments": segments,
            "identity_psnr": {part: _mean(values) for part, values in identity.items()},
        }
        write_meta(tmp, meta)
        if flow:
            write_flow(tmp, quiet)
    return meta


def build_unpaired(out, a_videos, b_videos, size, fps=None, val_fraction=0.1, mmap=False, overwrite=False, quiet=True):
    """An unpaired dataset: the frames of `a_videos` in a.npy and those of `b_videos` in b.npy, each
    video a segment of its side with its last `val_fraction` held out; the sides need not match in
    length or content. Returns its meta dict (`"unpaired": true`, B's own frame count and segments)."""
    sides = [[InputSource(video) for video in videos] for videos in (a_videos, b_videos)]
    counts = [sum(source.expected_frames(fps) for source in side) for side in sides]
    check_room(out, sum(counts), size, mmap, sides=1)
    progress = Progress(sum(counts), unit="frame", what=f"building {out}", enabled=not quiet)
    with staged_dir(out, overwrite=overwrite, what="dataset folder") as tmp:
        segments, frames = [], []
        for name, side in zip(("a.npy", "b.npy"), sides):
            array = NpyAppender(tmp / name, (size.height, size.width, 3))
            segments.append([])
            for source in side:
                start = array.count
                for chunk, _ in source.chunks(size, fps):
                    array.append(chunk)
                    progress.advance(len(chunk))
                n_val = int(round((array.count - start) * val_fraction))
                segments[-1].append({**source.meta(), "start": start, "stop": array.count, "val_start": array.count - n_val})
            array.close()
            frames.append(array.count)
        progress.close()
        meta = {
            "version": FORMAT_VERSION, "unpaired": True, "frames": frames[0], "frames_b": frames[1], "width": size.width,
            "height": size.height, "fps": fps if fps is not None else sides[0][0].info(sides[0][0].paths[0]).fps, "pair": UNPAIRED,
            "val_fraction": val_fraction, "segments": segments[0], "segments_b": segments[1],
        }
        write_meta(tmp, meta)
    return meta


def _mean(arrays):
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    return float(values.mean()) if len(values) else None


def describe(meta, path):
    """One line for the user: frames, size, segments, train/validation split, bytes on disk."""
    nbytes = sum(f.stat().st_size for f in path.iterdir())
    if is_unpaired(meta):
        sides = [(frames, segments_of(meta, side)) for frames, side in zip(frame_counts(meta), "ab")]
        return (f"{path}: unpaired, {meta['width']}x{meta['height']}; " + "; ".join(
            f"{side} {frames} frames in {len(segments)} segment{'s' if len(segments) != 1 else ''} "
            f"({sum(s['stop'] - s['val_start'] for s in segments)} for validation)"
            for side, (frames, segments) in zip("AB", sides)) + f"; {human_bytes(nbytes)} on disk")
    n_val = sum(s["stop"] - s["val_start"] for s in meta["segments"])
    n_seg = len(meta["segments"])
    return (f"{path}: {meta['frames']} frames of {meta['width']}x{meta['height']} ({meta['pair']}), "
            f"{n_seg} segment{'s' if n_seg != 1 else ''}, {meta['frames'] - n_val} train / {n_val} validation frames, "
            f"{'with the optical flow of its targets, ' if has_flow(path) else ''}{human_bytes(nbytes)} on disk")
