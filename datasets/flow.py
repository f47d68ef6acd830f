"""The target's optical flow, stored beside a dataset for the temporal loss (train --temporal):
computed once, when the dataset is built (unless --no-flow) or afterwards (--add-flow), never
per step. For every frame t of B, its flow to frame t-1 (metrics/temporal.py: DIS) as float16 in
`flow.npy` (N, H, W, 2), and where the forward-backward check finds it visible in both frames as
uint8 in `flow_mask.npy` (N, H, W); a segment's first frame has no frame before it (mask 0).
`flow.json` says how it was made. meta.json is left as it was, so the dataset's fingerprint (and
resuming the runs trained on it) does not change.

    write_flow("data/sample_gray"); flow, mask = load_flow(load_dataset("data/sample_gray"))
"""
import json
import os
from pathlib import Path

import numpy as np

from datasets.store import NpyAppender, read_meta
from utils.errors import DatasetError
from utils.fsio import temp_name
from utils.progress import Progress
from metrics.temporal import DIS_PRESET, pair_flow

FLOW_NAMES = ("flow.npy", "flow_mask.npy")
BYTES_PER_PIXEL = 2 * 2 + 1  # float16 (dx, dy) and a uint8 mask, per frame pixel
RECORD_NAME = "flow.json"
ADD_IT = "add it with `python main.py build-dataset --add-flow {path}`"


def has_flow(path):
    return (Path(path) / RECORD_NAME).exists()


def write_flow(path, quiet=True):
    """Compute and store the flow of dataset folder `path`'s B frames, segment by segment. The
    files appear whole or not at all (flow.json, written last, says they are there)."""
    path = Path(path)
    meta = read_meta(path)
    b = np.load(path / "b.npy", mmap_mode="r", allow_pickle=False)
    shape = (meta["height"], meta["width"])
    temps = [temp_name(path / name) for name in FLOW_NAMES]
    progress = Progress(meta["frames"], unit="frame", what=f"optical flow of {path}", enabled=not quiet)
    try:
        flows, masks = NpyAppender(temps[0], (*shape, 2), np.float16), NpyAppender(temps[1], shape)
        for segment in meta["segments"]:
            for t in range(segment["start"], segment["stop"]):
                if t == segment["start"]:
                    flow, mask = np.zeros((*shape, 2), np.float16), np.zeros(shape, np.uint8)
                else:
                    pair = pair_flow(b[t], b[t - 1])
                    flow, mask = pair.backward.astype(np.float16), pair.mask.astype(np.uint8)
                flows.append(flow[None])
                masks.append(mask[None])
                progress.advance(1)
        for appender in (flows, masks):
            appender.close()
        for temp, name in zip(temps, FLOW_NAMES):
            os.replace(temp, path / name)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
        progress.close()
    record = {"of": "b.npy", "direction": "frame t to frame t-1", "method": f"OpenCV DIS optical flow, preset {DIS_PRESET}",
              "mask": "forward-backward check (Sundaram et al. 2010), inside the frame", "frames": meta["frames"]}
    (path / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def load_flow(dataset, mmap=False):
    """(flow float16 (N, H, W, 2), mask uint8 (N, H, W)) of a loaded dataset; refused in one line
    when it has none or it does not match the frames."""
    path = Path(dataset.path)
    if not has_flow(path):
        raise DatasetError(path, "holds no optical flow, which --temporal needs; " + ADD_IT.format(path=path))
    arrays = []
    for name, tail, dtype in zip(FLOW_NAMES, ((2,), ()), (np.float16, np.uint8)):
        try:
            array = np.load(path / name, mmap_mode="c" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(path / name, f"missing or damaged ({exc}); " + ADD_IT.format(path=path)) from None
        if array.shape != dataset.b.shape[:3] + tail or array.dtype != dtype:
            raise DatasetError(path / name, f"holds {array.dtype} {array.shape}, not the flow of these frames; " + ADD_IT.format(path=path))
        arrays.append(array)
    return tuple(arrays)
