"""The on-disk dataset: `a.npy` and `b.npy` (uint8, N x H x W x 3) and `meta.json`, which says where
every frame came from, the segments and the validation ranges. Written chunk by chunk, read whole
or memory-mapped. A paired dataset's B frame i is the target of A frame i; an unpaired one
(`"unpaired": true`) holds two sides of their own lengths, each with its own segments.

    ds = load_dataset("data/sample_gray"); ds.a.shape == (N, H, W, 3); ds.ranges("train") == [(0, 270)]
    ds = load_dataset("data/day_night"); ds.ranges("val", side="b")    # an unpaired dataset's B side
"""
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import DatasetError
from utils.memory import available_memory, human_bytes

FORMAT_VERSION = 1
META_NAME = "meta.json"
ARRAY_NAMES = ("a.npy", "b.npy")
HEADROOM = 0.8  # share of the available memory a dataset may take; the rest is for the model and ffmpeg


def check_fits_in_memory(nbytes, path, what="this dataset"):
    """Refuse, before any work, data that would not fit in memory; suggest --mmap or a smaller --size."""
    free = available_memory()
    if nbytes > HEADROOM * free:
        raise DatasetError(path, f"{what} needs {human_bytes(nbytes)} in memory but only {human_bytes(free)} is available; "
                                 f"pass --mmap to keep it on disk, or use a smaller --size")


def _npy_header(shape, dtype):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)})
    return header.getvalue()


class NpyAppender:
    """A .npy file of frames (uint8 unless told) written chunk by chunk; the header gets the final
    count on close. numpy pads the header of a small array's to 128 bytes, so the final one fits
    the space written first (checked, not assumed)."""

    def __init__(self, path, frame_shape, dtype=np.uint8):
        self.path, self.frame_shape, self.dtype, self.count = Path(path), tuple(frame_shape), np.dtype(dtype), 0
        self.file = open(self.path, "wb")
        self.header_bytes = len(_npy_header((0, *self.frame_shape), self.dtype))
        self.file.write(b"\0" * self.header_bytes)

    def append(self, frames):
        if frames.shape[1:] != self.frame_shape or frames.dtype != self.dtype:
            raise ValueError(f"{self.path}: frames of {frames.dtype} {frames.shape[1:]}, expected {self.dtype} {self.frame_shape}")
        self.file.write(np.ascontiguousarray(frames).data)
        self.count += len(frames)

    def close(self):
        header = _npy_header((self.count, *self.frame_shape), self.dtype)
        if len(header) != self.header_bytes:
            raise ValueError(f"{self.path}: a header of {len(header)} bytes does not fit the {self.header_bytes} written")
        self.file.seek(0)
        self.file.write(header)
        self.file.close()


def write_meta(folder, meta):
    (Path(folder) / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


@dataclass
class Dataset:
    """A loaded dataset: A and B frames (uint8 N x H x W x 3, in RAM or memory-mapped) and meta."""

    path: Path
    a: np.ndarray
    b: np.ndarray
    meta: dict

    @property
    def unpaired(self):
        return is_unpaired(self.meta)

    def ranges(self, split, side="a"):
        """[(start, stop), ...] frame ranges of the 'train' or 'val' part of every segment (of an
        unpaired dataset's `side`, "a" or "b"; a paired dataset's sides share their segments)."""
        return split_ranges(segments_of(self.meta, side), split)


def is_unpaired(meta):
    return bool(meta.get("unpaired"))


def segments_of(meta, side="a"):
    """The segments of one side: an unpaired dataset's B side has its own; a paired one's are shared."""
    return meta["segments_b"] if side == "b" and is_unpaired(meta) else meta["segments"]


def split_ranges(segments, split):
    if split == "train":
        return [(s["start"], s["val_start"]) for s in segments]
    return [(s["val_start"], s["stop"]) for s in segments]


def frame_counts(meta):
    """(A frames, B frames): equal for a paired dataset."""
    return meta["frames"], meta["frames_b"] if is_unpaired(meta) else meta["frames"]


def read_meta(path):
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(path, "no such dataset folder; build one with `python main.py build-dataset`")
    try:
        meta = json.loads((path / META_NAME).read_text(encoding="utf-8"))
        needed = ("frames", "width", "height", "segments") + (("frames_b", "segments_b") if is_unpaired(meta) else ())
        if not all(key in meta for key in needed):
            raise ValueError("missing keys")
    except (OSError, ValueError) as exc:
        raise DatasetError(path / META_NAME, f"missing or damaged ({exc}); rebuild the dataset with build-dataset") from None
    return meta


def load_dataset(path, mmap=False):
    """Load a dataset folder; refuse one that would not fit in memory (suggesting --mmap)."""
    path = Path(path)
    meta = read_meta(path)
    frame = (meta["height"], meta["width"], 3)
    if not mmap:
        check_fits_in_memory(sum(frame_counts(meta)) * int(np.prod(frame)), path)
    arrays = []
    for name, frames in zip(ARRAY_NAMES, frame_counts(meta)):
        shape = (frames, *frame)
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
    digest = hashlib.sha256((path / META_NAME).read_bytes())
    for name in ARRAY_NAMES:
        size = os.path.getsize(path / name)
        digest.update(str(size).encode())
        with open(path / name, "rb") as f:
            for offset in np.linspace(0, max(0, size - 4096), 16).astype(np.int64):
                f.seek(int(offset))
                digest.update(f.read(4096))
    return digest.hexdigest()[:16]
