"""A dataset's test part: footage no run ever reads, kept for `verdict` (and `evaluate --split
test`). Its frames live in arrays of their own (`test_a.npy`, `test_b.npy`), apart from the
training and validation frames of a.npy and b.npy, so nothing that trains, validates, searches or
prunes can reach them; `test.json` names every test clip and where it came from. Like the flow,
it leaves meta.json as it was: adding test footage later keeps the dataset's fingerprint, and the
runs trained on it resume and are judged as they are.

    clips = test_clips("data/mine")            # [TestClip("unseen", inputs, targets), ...]
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.store import NpyAppender, is_unpaired
from utils.errors import DatasetError
from utils.fsio import temp_name, write_text_atomic

RECORD_NAME = "test.json"
ARRAY_NAMES = ("test_a.npy", "test_b.npy")
HOW_TO_ADD = ("add test footage no run trained on with `python main.py build-dataset --add-test {path} --test VIDEO ...` "
              "(--test-a A --test-b B for two aligned videos or an unpaired dataset's sides)")


@dataclass(frozen=True)
class TestClip:
    """One test clip: its name, its input frames and its target frames (None for an unpaired side), uint8 (n, H, W, 3)."""

    name: str
    inputs: np.ndarray
    targets: np.ndarray | None
    record: dict


def has_test(path):
    return (Path(path) / RECORD_NAME).exists()


def read_test_record(path):
    path = Path(path)
    if not has_test(path):
        raise DatasetError(path, "has no test footage; " + HOW_TO_ADD.format(path=path))
    try:
        return json.loads((path / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(path / RECORD_NAME, f"damaged ({exc}); " + HOW_TO_ADD.format(path=path)) from None


def test_clips(path, meta, side="a"):
    """The test clips of dataset folder `path` (memory-mapped): paired, input and target; of an
    unpaired dataset, `side`'s footage alone (its translation has no target)."""
    path = Path(path)
    record = read_test_record(path)
    arrays = []
    for name in ARRAY_NAMES:
        try:
            arrays.append(np.load(path / name, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(path / name, f"missing or damaged ({exc}); build the dataset again") from None
    if is_unpaired(meta):
        array, clips = (arrays[1], record["clips_b"]) if side == "b" else (arrays[0], record["clips"])
        return [TestClip(c["name"], array[c["start"]:c["stop"]], None, c) for c in clips]
    return [TestClip(c["name"], arrays[0][c["start"]:c["stop"]], arrays[1][c["start"]:c["stop"]], c) for c in record["clips"]]


def check_clip_frames(path, clips, frames, whose):
    """Refuse test clips shorter than `whose` clips of `frames` frames: a window would run past their end."""
    shortest = min(clips, key=lambda clip: len(clip.inputs))
    if len(shortest.inputs) < frames:
        raise DatasetError(Path(path) / RECORD_NAME, f"test clip {shortest.name} has {len(shortest.inputs)} frames, fewer than "
                                                     f"the {frames} of {whose} clips; add longer test footage")


def clip_names(paths_and_parts):
    """A unique name for each test clip: its file's stem, numbered where two share one."""
    names, seen = [], {}
    for stem in paths_and_parts:
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


class TestWriter:
    """Appends test clips to test_a.npy and test_b.npy under temporary names in `folder`; `close`
    moves them into place and writes test.json last (its presence says the part is whole)."""

    def __init__(self, folder, frame_shape, unpaired=False):
        self.folder, self.unpaired = Path(folder), unpaired
        self.temps = [temp_name(self.folder / name) for name in ARRAY_NAMES]
        self.arrays = [NpyAppender(temp, frame_shape) for temp in self.temps]
        self.clips = {"clips": [], "clips_b": []}

    def add(self, name, pieces, meta, side="a"):
        """One clip from `pieces`, (A, B) chunks (an unpaired side's: (frames, None)); returns its frame count."""
        arrays = [self.arrays[1 if side == "b" else 0]] if self.unpaired else self.arrays
        start = arrays[0].count
        for a, b in pieces:
            arrays[0].append(a)
            if not self.unpaired:
                arrays[1].append(b)
        self.clips["clips_b" if side == "b" else "clips"].append({"name": name, **meta, "start": start, "stop": arrays[0].count})
        return arrays[0].count - start

    def close(self):
        for appender in self.arrays:
            appender.close()
        for temp, name in zip(self.temps, ARRAY_NAMES):
            os.replace(temp, self.folder / name)
        record = {"clips": self.clips["clips"], "frames": self.arrays[0].count,
                  "note": "footage no run trains or validates on: only `verdict` and `evaluate --split test` read it"}
        if self.unpaired:
            record.update(clips_b=self.clips["clips_b"], frames_b=self.arrays[1].count)
        write_text_atomic(self.folder / RECORD_NAME, json.dumps(record, indent=2) + "\n")

    def abort(self):
        for appender in self.arrays:
            if not appender.file.closed:
                appender.file.close()
        for temp in self.temps:
            temp.unlink(missing_ok=True)
