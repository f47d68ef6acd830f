"""Building a dataset folder from pair sources: frames are decoded in chunks and appended to the
arrays on disk, so building needs little memory whatever the length; the folder appears whole or not at all.

    build_dataset("data/sample_gray", [DerivedSource("videos/sample.mp4", parse_pair("gray"))], Size(64, 64))
    build_unpaired("data/day_night", ["videos/day.mp4"], ["videos/night1.mp4", "videos/night2.mp4"], Size(64, 64))
Test footage (datasets/test_part.py) is built beside them: whole videos, or whole shots cut out of
the training footage (TestFootage).
"""
import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.flow import BYTES_PER_PIXEL as FLOW_BYTES_PER_PIXEL, has_flow, write_flow
from datasets.pairs import TWO_VIDEOS, UNPAIRED, parse_pair
from datasets.sources import DerivedSource, InputSource, PairedSource
from media.frame_folder import is_frame_file, natural_key
from datasets.store import FORMAT_VERSION, NpyAppender, check_fits_in_memory, frame_counts, is_unpaired, read_meta, segments_of, write_meta
from datasets.test_part import TestWriter, clip_names, has_test, read_test_record
from media.shots import shots
from utils.errors import DatasetError
from utils.fsio import ensure_parent, staged_dir
from utils.memory import human_bytes
from metrics.scores import PSNR_CAP_DB, psnr
from utils.progress import Progress
from utils.size import Size


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


@dataclass(frozen=True)
class TestFootage:
    """What a dataset holds apart for the verdict: whole `sources` (each a test clip; of an unpaired
    dataset, `sides`: A's and B's footage), or `shots` whole shots of the training footage, found by
    ffmpeg's scene score. A test clip shorter than `min_frames` (one training clip) is refused."""

    sources: tuple = ()
    sides: tuple = ((), ())
    shots: int = 0
    min_frames: int = 1

    def expected_frames(self, fps):
        return sum(source.expected_frames(fps) for source in (*self.sources, *self.sides[0], *self.sides[1]))


def check_test_footage(test, trained_paths, fps):
    """Refuse, before decoding, a test video that is also training footage (one of `trained_paths`)
    or is shorter than one clip."""
    trained = {Path(p).resolve() for p in trained_paths}
    for source in (*test.sources, *test.sides[0], *test.sides[1]):
        for path in source.paths:
            if Path(path).resolve() in trained:
                raise DatasetError(path, "is both training and test footage; a verdict on it would be on frames a run trained on: "
                                         "give the test videos apart from the training ones")
        _check_clip_length(source, source.expected_frames(fps), test.min_frames)


def held_shots(sources, size, fps, count, min_frames):
    """{source index: [(start, stop)]}: `count` whole shots of the footage, spread evenly over its
    shots of at least `min_frames` frames, for the test part; at least one shot stays for training."""
    found = []
    for index, source in enumerate(sources):
        rate = fps or source.info(source.paths[0]).fps
        found += [(index, *shot) for shot in shots((b for _, b in source.chunks(size, fps)), rate, source.paths[-1])]
    eligible = [shot for shot in found if shot[2] - shot[1] >= min_frames]
    if len(eligible) < count or len(found) <= count:
        where = sources[0].paths[-1] if len(sources) == 1 else f"{sources[0].paths[-1]} and the other {len(sources) - 1} videos"
        raise DatasetError(where, f"has {len(found)} shots, {len(eligible)} of them of at least {min_frames} frames; --test-shots "
                                  f"{count} needs {count} such shots and one more to train on: ask for fewer, or give whole "
                                  f"videos with --test")
    held = {}
    for k in range(count):  # the middle of each of `count` equal stretches of the eligible shots
        index, start, stop = eligible[int((k + 0.5) * len(eligible) / count)]
        held.setdefault(index, []).append((start, stop))
    return held


def split_at(chunks, held):
    """(label, A, B) pieces of `chunks`, cut where the `held` frame ranges [(start, stop)] begin and
    end: label ("test", start) inside a held range, ("train", k) in the k-th stretch around them."""
    offset = 0
    for a, b in chunks:
        i = 0
        while i < len(a):
            frame = offset + i
            inside = next(((start, stop) for start, stop in held if start <= frame < stop), None)
            if inside:
                label, stop = ("test", inside[0]), inside[1]
            else:
                label = ("train", sum(1 for start, _ in held if start <= frame))
                stop = min([start for start, _ in held if start > frame], default=offset + len(a))
            stop = min(stop - offset, len(a))
            yield label, a[i:stop], None if b is None else b[i:stop]
            i = stop
        offset += len(a)


def build_dataset(out, sources, size, fps=None, val_fraction=0.1, mmap=False, overwrite=False, quiet=True, flow=True,
                  test=TestFootage()):
    """Decode `sources` into the dataset folder `out` and return its meta dict. Each source becomes
    one segment (split where a held-out test shot was cut out of it), and the last `val_fraction`
    of each is held out for validation. meta.json also records the identity PSNR (the input taken
    as the answer) of the training and validation parts. With `flow` (the default), the target's
    optical flow is stored too (datasets/flow.py), for the temporal loss; without it, train leaves
    that loss off. `test` is the footage held apart for the verdict (datasets/test_part.py)."""
    check_test_footage(test, [p for source in sources for p in source.paths], fps)
    expected = sum(source.expected_frames(fps) for source in sources) + test.expected_frames(fps)
    check_room(out, expected, size, mmap, flow=flow)
    held = held_shots(sources, size, fps, test.shots, test.min_frames) if test.shots else {}
    segments, identity = [], {"train": [], "val": []}
    progress = Progress(expected, unit="frame", what=f"building {out}", enabled=not quiet)
    with staged_dir(out, overwrite=overwrite, what="dataset folder") as tmp:
        arrays = NpyAppender(tmp / "a.npy", (size.height, size.width, 3)), NpyAppender(tmp / "b.npy", (size.height, size.width, 3))
        tests = TestWriter(tmp, (size.height, size.width, 3)) if test.sources or held else None
        names = iter(clip_names([f"{Path(s.paths[-1]).stem}_shot{start}" for i, s in enumerate(sources) for start, _ in held.get(i, [])]))
        for index, source in enumerate(sources):
            source_frame = 0
            for (part, _), group in itertools.groupby(split_at(source.chunks(size, fps), held.get(index, [])), key=lambda p: p[0]):
                pieces = ((a, b) for _, a, b in group)  # streamed: a segment is never held in memory whole
                if part == "test":
                    length = tests.add(next(names), pieces, source.meta())
                    record = tests.clips["clips"][-1]
                else:
                    record = _append_segment(arrays, pieces, val_fraction, identity, source.meta())
                    segments.append(record)
                    length = record["stop"] - record["start"]
                if index in held:  # where in its video a piece cut around a held-out shot came from
                    record["source_frames"] = [source_frame, source_frame + length]
                progress.advance(length)
                source_frame += length
        if tests:
            _write_test_sources(tests, test, size, fps, progress)
        for array in arrays:
            array.close()
        if tests:
            tests.close()
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


def _append_segment(arrays, pieces, val_fraction, identity, source_meta):
    """Append one segment's (A, B) pieces to the arrays; its meta.json entry, its last `val_fraction` held out."""
    start, scores = arrays[0].count, []
    for chunk_a, chunk_b in pieces:
        arrays[0].append(chunk_a)
        arrays[1].append(chunk_b)
        scores.append(np.minimum(psnr(chunk_a, chunk_b), PSNR_CAP_DB))
    stop = arrays[0].count
    n_val = int(round((stop - start) * val_fraction))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    identity["train"].append(scores[:len(scores) - n_val])
    identity["val"].append(scores[len(scores) - n_val:])
    return {**source_meta, "start": start, "stop": stop, "val_start": stop - n_val}


def _check_clip_length(source, frames, min_frames):
    """Refuse a test video shorter than one clip: from its probed length before decoding, and from
    the frames it gave after (a damaged file can give fewer)."""
    if frames < min_frames:
        raise DatasetError(source.paths[0], f"is shorter than one clip: {frames} frames, and a test clip needs at least "
                                            f"{min_frames} (train's frames per clip); give a longer video")


def add_test(path, test, overwrite=False, quiet=True):
    """Add test footage (`test.sources`, or an unpaired dataset's `test.sides`) to the built dataset
    `path`, at its size and frame rate; meta.json, and so the runs trained on it, stay as they were."""
    path = Path(path)
    meta = read_meta(path)
    if has_test(path) and not overwrite:
        clips = read_test_record(path)["clips"]
        raise DatasetError(path, f"already holds test footage ({len(clips)} clips); pass --overwrite to replace it")
    trained = [s[key] for s in meta["segments"] + meta.get("segments_b", []) for key in ("video", "a", "b") if s.get(key)]
    check_test_footage(test, trained, meta.get("fps"))
    size, fps = Size(meta["width"], meta["height"]), meta.get("fps")
    writer = TestWriter(path, (meta["height"], meta["width"], 3), unpaired=is_unpaired(meta))
    progress = Progress(test.expected_frames(fps), unit="frame", what=f"test footage of {path}", enabled=not quiet)
    try:
        _write_test_sources(writer, test, size, fps, progress)
        (path / "test.json").unlink(missing_ok=True)  # the old part is gone before the new arrays take its place
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()
    return read_test_record(path)


def _write_test_sources(writer, test, size, fps, progress):
    sides = [("a", source) for source in test.sides[0]] + [("b", source) for source in test.sides[1]]
    everything = [("a", source) for source in test.sources] + sides
    names = clip_names([Path(source.paths[-1]).stem for _, source in everything])  # B's name: the target, or the video
    for name, (side, source) in zip(names, everything):
        frames = writer.add(name, source.chunks(size, fps), source.meta(), side)
        _check_clip_length(source, frames, test.min_frames)
        progress.advance(frames)


def build_unpaired(out, a_videos, b_videos, size, fps=None, val_fraction=0.1, mmap=False, overwrite=False, quiet=True,
                   test=TestFootage()):
    """An unpaired dataset: the frames of `a_videos` in a.npy and those of `b_videos` in b.npy, each
    video a segment of its side with its last `val_fraction` held out; the sides need not match in
    length or content. `test.sides`: each side's footage held apart for the verdict. Returns its
    meta dict (`"unpaired": true`, B's own frame count and segments)."""
    sides = [[InputSource(video) for video in videos] for videos in (a_videos, b_videos)]
    check_test_footage(test, [p for source in sides[0] + sides[1] for p in source.paths], fps)
    expected = sum(source.expected_frames(fps) for side in sides for source in side) + test.expected_frames(fps)
    check_room(out, expected, size, mmap, sides=1)
    progress = Progress(expected, unit="frame", what=f"building {out}", enabled=not quiet)
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
        if test.sides[0] or test.sides[1]:
            tests = TestWriter(tmp, (size.height, size.width, 3), unpaired=True)
            _write_test_sources(tests, test, size, fps, progress)
            tests.close()
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
    """One line for the user: frames, size, segments, train/validation/test split, bytes on disk."""
    nbytes = sum(f.stat().st_size for f in path.iterdir())
    test = read_test_record(path) if has_test(path) else None
    clips = len(test["clips"]) + len(test.get("clips_b", [])) if test else 0
    held = (f"{clips} test clip{'s' if clips != 1 else ''} ({test['frames'] + test.get('frames_b', 0)} frames) held apart"
            if test else "no test footage (`verdict` needs some: build-dataset --add-test)")
    if is_unpaired(meta):
        sides = [(frames, segments_of(meta, side)) for frames, side in zip(frame_counts(meta), "ab")]
        return (f"{path}: unpaired, {meta['width']}x{meta['height']}; " + "; ".join(
            f"{side} {frames} frames in {len(segments)} segment{'s' if len(segments) != 1 else ''} "
            f"({sum(s['stop'] - s['val_start'] for s in segments)} for validation)"
            for side, (frames, segments) in zip("AB", sides)) + f"; {held}; {human_bytes(nbytes)} on disk")
    n_val = sum(s["stop"] - s["val_start"] for s in meta["segments"])
    n_seg = len(meta["segments"])
    return (f"{path}: {meta['frames']} frames of {meta['width']}x{meta['height']} ({meta['pair']}), "
            f"{n_seg} segment{'s' if n_seg != 1 else ''}, {meta['frames'] - n_val} train / {n_val} validation frames, {held}, "
            f"{'with the optical flow of its targets, ' if has_flow(path) else ''}{human_bytes(nbytes)} on disk")
