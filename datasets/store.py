"""The on-disk dataset: `a.npy` and `b.npy` (uint8, N x H x W x 3) and `meta.json`, and how it is built.

A pair is input clip A -> target clip B: two aligned videos, or one video with a derived input
(gray, edges, blur, lowres, noise) or a later frame as target (future:K). Frames are decoded in
chunks and appended to the arrays on disk, so building needs little memory whatever the size.
    build_dataset("data/sample_gray", videos=["videos/sample.mp4"], pair="gray", size=(64, 64))
"""
import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.errors import DatasetError
from utils.ffmpeg import iter_frames, probe
from utils.fsio import ensure_parent, staged_dir
from utils.memory import check_fits_in_memory, human_bytes

FORMAT_VERSION = 1
DERIVED_PAIRS = ("gray", "edges", "blur", "lowres", "noise", "future:K")
CHUNK_FRAMES = 64
NOISE_SIGMA = 25.0  # out of 255
LOWRES_FACTOR = 4
HEADER_BYTES = 128  # room for any .npy v1 header of a 4-d uint8 array, rewritten once the count is known


def parse_pair(text):
    """'gray' -> ('gray', 0); 'future:3' -> ('future', 3). Raises ValueError on anything else."""
    mode, _, k = text.partition(":")
    if mode == "future":
        if not k.isdigit() or int(k) < 1:
            raise ValueError(f"future needs a positive frame offset, e.g. future:3 (got {text!r})")
        return mode, int(k)
    if mode not in DERIVED_PAIRS or k:
        raise ValueError(f"unknown pair {text!r}; choose one of {', '.join(DERIVED_PAIRS)}")
    return mode, 0


def derive_input(frames, mode, rng):
    """The input A that a derived pair makes from target frames B (uint8 n x H x W x 3)."""
    if mode == "gray":
        luma = np.rint(frames @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
        return np.repeat(luma[..., None], 3, axis=-1)
    if mode == "noise":
        noisy = frames + rng.normal(0.0, NOISE_SIGMA, size=frames.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    h, w = frames.shape[1:3]
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):  # OpenCV filters take one image at a time
        if mode == "edges":
            edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 100, 200)
            out[i] = edges[..., None]
        elif mode == "blur":
            out[i] = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(1.0, w / 32))
        elif mode == "lowres":
            small = cv2.resize(frame, (max(1, w // LOWRES_FACTOR), max(1, h // LOWRES_FACTOR)), interpolation=cv2.INTER_AREA)
            out[i] = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out


class NpyAppender:
    """A .npy file of uint8 frames written chunk by chunk; the header gets the final count on close."""

    def __init__(self, path, frame_shape):
        self.path, self.frame_shape, self.count = Path(path), tuple(frame_shape), 0
        self.file = open(self.path, "wb")
        self.file.write(b"\0" * HEADER_BYTES)

    def append(self, frames):
        assert frames.shape[1:] == self.frame_shape and frames.dtype == np.uint8
        self.file.write(np.ascontiguousarray(frames).data)
        self.count += len(frames)

    def close(self):
        header = repr({"descr": "|u1", "fortran_order": False, "shape": (self.count,) + self.frame_shape}).encode()
        room = HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + header.ljust(room - 1) + b"\n")
        self.file.close()


def paired_chunks(a, b, size, fps=None, trim=False, infos=None):
    """Yield equal-length uint8 chunks (A, B) of two aligned videos; unequal lengths are an error
    unless `trim`. `infos` maps paths to their `probe` results when the caller has them."""
    infos = infos or {}
    chunks_a = iter_frames(a, size=size, fps=fps, chunk_frames=CHUNK_FRAMES, info=infos.get(a))
    chunks_b = iter_frames(b, size=size, fps=fps, chunk_frames=CHUNK_FRAMES, info=infos.get(b))
    try:
        for ca in chunks_a:
            cb = next(chunks_b, None)
            n = 0 if cb is None else min(len(ca), len(cb))
            if n:
                yield ca[:n], cb[:n]
            if cb is None or len(ca) != len(cb):
                if not trim:
                    raise DatasetError(a, f"A and B ({b}) have different frame counts; pass --trim to use the shorter length")
                return
        if next(chunks_b, None) is not None and not trim:
            raise DatasetError(a, f"A and B ({b}) have different frame counts; pass --trim to use the shorter length")
    finally:
        chunks_a.close()
        chunks_b.close()


def derived_chunks(video, size, pair, fps=None, rng=None, info=None):
    """Yield uint8 chunks (A, B) derived from one video as `pair` says (see DERIVED_PAIRS);
    future:K pairs frame t with frame t + K."""
    mode, k = parse_pair(pair)
    rng = rng if rng is not None else np.random.default_rng(0)
    held = np.empty((0, size[1], size[0], 3), dtype=np.uint8)
    for chunk in iter_frames(video, size=size, fps=fps, chunk_frames=CHUNK_FRAMES, info=info):
        if mode != "future":
            yield derive_input(chunk, mode, rng), chunk
            continue
        held = np.concatenate([held, chunk])
        if len(held) > k:
            yield held[:-k], held[k:]
            held = held[-k:]


def _expected_frames(sources, pair, k, fps, trim, infos):
    """Frames the build will yield, from probing alone: used to refuse a build early and to
    catch unequal pairs before decoding."""
    total = 0
    for source in sources:
        if pair is None:
            na, nb = infos[source[0]].frames_at(fps), infos[source[1]].frames_at(fps)
            if na != nb and not trim:
                raise DatasetError(source[0], f"has {na} frames but B ({source[1]}) has {nb}; pass --trim to use the first {min(na, nb)} of each")
            total += min(na, nb)
        else:
            total += max(0, infos[source].frames_at(fps) - k)
    return total


def build_dataset(out, *, pairs=None, videos=None, pair=None, size=(64, 64), fps=None, val_fraction=0.1,
                  trim=False, mmap=False, overwrite=False, seed=0):
    """Decode the sources into `out` (a dataset folder) and return its meta dict.

    Give `pairs` [(A, B), ...] for aligned videos, or `videos` [V, ...] with `pair` for a derived pair.
    Each source becomes one segment; the last `val_fraction` of each is held out for validation."""
    mode, k = parse_pair(pair) if pair else (None, 0)
    sources = list(pairs) if mode is None else list(videos)
    width, height = size
    paths = [p for source in sources for p in (source if mode is None else [source])]
    infos = {p: probe(p) for p in paths}
    expected = _expected_frames(sources, mode, k, fps, trim, infos)
    nbytes = 2 * expected * height * width * 3
    if not mmap:
        check_fits_in_memory(nbytes, out, what=f"training on this dataset ({expected} frames of {width}x{height})")
    parent = ensure_parent(out)
    if shutil.disk_usage(parent).free < nbytes:
        raise DatasetError(out, f"needs {human_bytes(nbytes)} on disk but {parent} has {human_bytes(shutil.disk_usage(parent).free)} free")
    rng = np.random.default_rng(seed)
    segments = []
    with staged_dir(out, overwrite=overwrite, what="dataset folder") as tmp:
        arrays = NpyAppender(tmp / "a.npy", (height, width, 3)), NpyAppender(tmp / "b.npy", (height, width, 3))
        for source in sources:
            start = arrays[0].count
            chunks = (paired_chunks(*source, size, fps, trim, infos) if mode is None
                      else derived_chunks(source, size, pair, fps, rng, infos[source]))
            for chunk_a, chunk_b in chunks:
                arrays[0].append(chunk_a)
                arrays[1].append(chunk_b)
            stop = arrays[0].count
            names = {"a": str(source[0]), "b": str(source[1])} if mode is None else {"video": str(source)}
            n_val = int(round((stop - start) * val_fraction))
            segments.append({**names, "start": start, "stop": stop, "val_start": stop - n_val})
        for array in arrays:
            array.close()
        meta = {
            "version": FORMAT_VERSION,
            "frames": arrays[0].count,
            "width": width,
            "height": height,
            "fps": fps if fps is not None else infos[paths[0]].fps,
            "pair": pair or "paired",
            "val_fraction": val_fraction,
            "segments": segments,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


@dataclass
class Dataset:
    """A loaded dataset: A and B frames (uint8 N x H x W x 3, in RAM or memory-mapped) and meta."""

    path: Path
    a: np.ndarray
    b: np.ndarray
    meta: dict

    def ranges(self, split):
        """[(start, stop), ...] frame ranges of the 'train' or 'val' part of every segment."""
        if split == "train":
            return [(s["start"], s["val_start"]) for s in self.meta["segments"]]
        return [(s["val_start"], s["stop"]) for s in self.meta["segments"]]


def read_meta(path):
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(path, "no such dataset folder; build one with `python main.py build-dataset`")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if not all(key in meta for key in ("frames", "width", "height", "segments")):
            raise ValueError("missing keys")
    except (OSError, ValueError) as exc:
        raise DatasetError(path / "meta.json", f"missing or damaged ({exc}); rebuild the dataset with build-dataset") from None
    return meta


def load_dataset(path, mmap=False):
    """Load a dataset folder; refuse one that would not fit in memory (suggesting --mmap)."""
    path = Path(path)
    meta = read_meta(path)
    shape = (meta["frames"], meta["height"], meta["width"], 3)
    if not mmap:
        check_fits_in_memory(2 * int(np.prod(shape)), path)
    arrays = []
    for name in ("a.npy", "b.npy"):
        try:
            # Copy-on-write mapping: the file is never changed, and the array stays writable for torch.from_numpy.
            array = np.load(path / name, mmap_mode="c" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(path / name, f"missing or damaged ({exc}); rebuild the dataset with build-dataset") from None
        if array.shape != shape or array.dtype != np.uint8:
            raise DatasetError(path / name, f"holds {array.dtype} {array.shape}, but meta.json says uint8 {shape}; rebuild the dataset")
        arrays.append(array)
    return Dataset(path, arrays[0], arrays[1], meta)


def fingerprint(path):
    """A short hash of meta.json, the arrays' sizes and a sample of their bytes: cheap, and different
    for any two datasets a user would mix up."""
    path = Path(path)
    digest = hashlib.sha256((path / "meta.json").read_bytes())
    for name in ("a.npy", "b.npy"):
        size = os.path.getsize(path / name)
        digest.update(str(size).encode())
        with open(path / name, "rb") as f:
            for offset in np.linspace(0, max(0, size - 4096), 16).astype(np.int64):
                f.seek(int(offset))
                digest.update(f.read(4096))
    return digest.hexdigest()[:16]


def describe(meta, path, nbytes):
    """One line for the user: frames, size, segments, train/validation split, bytes on disk."""
    n_val = sum(s["stop"] - s["val_start"] for s in meta["segments"])
    n_seg = len(meta["segments"])
    return (f"{path}: {meta['frames']} frames of {meta['width']}x{meta['height']} ({meta['pair']}), "
            f"{n_seg} segment{'s' if n_seg != 1 else ''}, {meta['frames'] - n_val} train / {n_val} validation frames, "
            f"{human_bytes(nbytes)} on disk")

