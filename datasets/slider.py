"""The frame slider: windows of `clip_frames` consecutive frames over uint8 frames held in RAM (or memory-mapped).

Windows start every `stride` frames (train's --step) inside each frame range and never cross one; an epoch visits
every window once, in a seeded order, shared out between DDP ranks. A batch is one gathered index
(no per-frame Python loop); `utils.device.to_model_input` turns it into floats on the device.
    slider = ClipSlider(ds.a, ds.b, ds.ranges("train"), clip_frames=9, stride=3, batch_size=5)
    for a, b in slider.batches(epoch=0): ...   # uint8 (B, T, H, W, 3) each
"""
import math

import numpy as np
import torch

from utils.errors import DatasetError
from utils.size import Size


def window_starts(ranges, clip_frames, stride):
    """First frame of every window: `clip_frames` frames every `stride` frames inside each [start, stop)."""
    parts = [np.arange(start, stop - clip_frames + 1, stride, dtype=np.int64) for start, stop in ranges]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class ClipSlider:
    """Serves (A, B) clip batches as uint8 (B, T, H, W, 3) arrays.

    `crop` (a Size) takes a random crop and `flip` a random horizontal flip, the same for A and B
    and for every frame of a clip. Randomness comes from (seed, epoch, rank, batch), so a
    resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, a, b, ranges, clip_frames, stride=1, batch_size=1, shuffle=True, seed=0, rank=0, world_size=1,
                 crop=None, flip=False, source="dataset", motion=None):
        self.a, self.b = a, b
        self.motion = motion  # (flow, mask) of B, for the temporal loss, or None
        self.clip_frames, self.stride, self.batch_size = clip_frames, stride, batch_size
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.crop, self.flip = crop, flip
        self.starts = window_starts(ranges, clip_frames, stride)
        if len(self.starts) < world_size:
            lengths = ", ".join(str(stop - start) for start, stop in ranges)
            raise DatasetError(source, f"too short: its segments have {lengths} frames here but a window needs -pool {clip_frames} "
                                       f"frames ({len(self.starts)} windows for {world_size} process(es)); "
                                       f"lower -pool or --step, or add frames")
        if crop is not None and (crop.height > self.frame_size.height or crop.width > self.frame_size.width):
            raise DatasetError(source, f"--crop {crop} is larger than its frames ({self.frame_size})")
        self.offsets = np.arange(clip_frames, dtype=np.int64)
        # Torch views of the same memory: index_select copies frames on all intra-op threads, numpy on one.
        self.a_view, self.b_view = torch.from_numpy(a), torch.from_numpy(b)

    @property
    def frame_size(self):
        return Size(self.a.shape[2], self.a.shape[1])

    @property
    def clip_size(self):
        """The size of the frames it serves: the crop, or whole frames."""
        return self.crop or self.frame_size

    @property
    def windows(self):
        return len(self.starts)

    def __len__(self):
        """Batches per epoch on each rank (the same on every rank, so DDP stays in step)."""
        return math.ceil((self.windows // self.world_size) / self.batch_size)

    def epoch_batches(self, epoch, draw=()):
        """This rank's window numbers for `epoch`, split into batches. Across ranks every window
        appears exactly once; a rank with one window more than the others puts it in its last batch.
        `draw` numbers further orders of the same epoch (an unpaired side that goes round again)."""
        order = np.random.default_rng([self.seed, epoch, *draw]).permutation(self.windows) if self.shuffle else np.arange(self.windows)
        mine = order[self.rank::self.world_size]
        cuts = np.arange(1, len(self)) * self.batch_size
        return np.split(mine, cuts)

    def gather(self, windows, epoch=0, batch=0, out=None):
        """(A, B) uint8 (B, T, H, W, 3) for the given window numbers, with one index per array.
        `out`: two uint8 tensors of at least that many clips to gather into (views of them are returned)."""
        frames = self.starts[windows][:, None] + self.offsets  # (B, T) frame numbers
        if self.crop is None and not self.flip:
            flat = torch.from_numpy(frames.ravel())
            shape = frames.shape + self.a.shape[1:]
            if out is None:
                return self.a_view.index_select(0, flat).numpy().reshape(shape), self.b_view.index_select(0, flat).numpy().reshape(shape)
            targets = [buffer[:len(windows)].view(-1, *shape[2:]) for buffer in out]
            for view, target in zip((self.a_view, self.b_view), targets):
                torch.index_select(view, 0, flat, out=target)
            return tuple(buffer[:len(windows)].numpy() for buffer in out)
        index, _ = self.cropped(windows, epoch, batch)
        if out is None:
            return self.a[index], self.b[index]
        clips = [buffer[:len(windows)].numpy() for buffer in out]
        clips[0][...], clips[1][...] = self.a[index], self.b[index]
        return tuple(clips)

    def cropped(self, windows, epoch, batch):
        """(index, flipped): the array index of the windows' random crops and flips (from (seed,
        epoch, rank, batch)), (B, T, h, w) over the frames, and which clips are flipped."""
        frames = self.starts[windows][:, None] + self.offsets  # (B, T) frame numbers
        rng = np.random.default_rng([self.seed, epoch, self.rank, batch])
        (width, height), (cw, ch) = self.frame_size, self.clip_size
        rows = rng.integers(0, height - ch + 1, size=len(windows))[:, None] + np.arange(ch)  # (B, ch)
        cols = rng.integers(0, width - cw + 1, size=len(windows))[:, None] + np.arange(cw)  # (B, cw)
        flipped = np.zeros(len(windows), bool)
        if self.flip:
            flipped = rng.random(len(windows)) < 0.5
            cols = np.where(flipped[:, None], cols[:, ::-1], cols)
        return (frames[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]), flipped

    def gather_motion(self, windows, epoch=0, batch=0):
        """The target's stored flow and mask for the clips `gather` serves, cropped and flipped as
        they are: float16 (B, T, h, w, 2) in pixels (frame t to t-1; a flipped clip's x flow negated)
        and uint8 (B, T, h, w). Needs the slider's `motion` (datasets/flow.py's arrays)."""
        flow, mask = self.motion
        index, flipped = self.cropped(windows, epoch, batch)
        flows = flow[index]
        flows[flipped, ..., 0] *= -1
        return flows, mask[index]

    def batches(self, epoch):
        """Yield this rank's (A, B) batches of `epoch`, in order."""
        for number, windows in enumerate(self.epoch_batches(epoch)):
            yield self.gather(windows, epoch, number)


class UnpairedSlider:
    """Serves (A, B) batches of an unpaired dataset: clips of A and clips of B drawn apart, each side
    with its own windows, order, crops and flips. An epoch is as many batches as the longer side
    has; the shorter side goes round again in a fresh order as often as it needs to."""

    motion = None  # no target, so no target's flow

    def __init__(self, a, b, ranges_a, ranges_b, clip_frames, stride=1, batch_size=1, seed=0, rank=0, world_size=1, crop=None,
                 flip=False, source="dataset"):
        self.sides = [ClipSlider(frames, frames, ranges, clip_frames, stride, batch_size, seed=seed + n, rank=rank, world_size=world_size,
                                 crop=crop, flip=flip, source=f"{source} (side {'AB'[n]})")
                      for n, (frames, ranges) in enumerate(((a, ranges_a), (b, ranges_b)))]
        self.clip_frames, self.batch_size = clip_frames, batch_size

    frame_size = property(lambda self: self.sides[0].frame_size)
    clip_size = property(lambda self: self.sides[0].clip_size)

    @property
    def windows(self):
        return sum(side.windows for side in self.sides)

    def __len__(self):
        return max(len(side) for side in self.sides)

    def epoch_batches(self, epoch):
        """This rank's [(A window numbers, B window numbers)] per batch of `epoch`: the side with more
        windows visits each once, and the other fills batches of the same sizes, round after round."""
        longer = max(range(2), key=lambda n: self.sides[n].windows)
        sizes = [len(batch) for batch in self.sides[longer].epoch_batches(epoch)]
        per_side = []
        for n, side in enumerate(self.sides):
            stream, draw = np.concatenate(side.epoch_batches(epoch)), 0
            while len(stream) < sum(sizes):
                draw += 1
                stream = np.concatenate([stream, *side.epoch_batches(epoch, draw=(draw,))])
            per_side.append(np.split(stream[:sum(sizes)], np.cumsum(sizes)[:-1]))
        return list(zip(*per_side))

    def gather(self, windows, epoch=0, batch=0, out=None):
        """(A clips, B clips), uint8 (B, T, H, W, 3) each; `out` as ClipSlider.gather's (one buffer per side)."""
        return tuple(side.gather(numbers, epoch, batch, out=None if out is None else (buffer, buffer))[0]
                     for side, numbers, buffer in zip(self.sides, windows, out or (None, None)))

    def batches(self, epoch):
        for number, windows in enumerate(self.epoch_batches(epoch)):
            yield self.gather(windows, epoch, number)


def training_slider(dataset, clip_frames, stride, batch_size, seed=0, rank=0, world_size=1, crop=None, flip=False, source="dataset",
                    motion=None):
    """The training windows of `dataset`: paired clips, or an unpaired dataset's clips of each side."""
    if dataset.unpaired:
        return UnpairedSlider(dataset.a, dataset.b, dataset.ranges("train", "a"), dataset.ranges("train", "b"), clip_frames, stride,
                              batch_size, seed=seed, rank=rank, world_size=world_size, crop=crop, flip=flip, source=source)
    return ClipSlider(dataset.a, dataset.b, dataset.ranges("train"), clip_frames, stride, batch_size, seed=seed, rank=rank,
                      world_size=world_size, crop=crop, flip=flip, source=source, motion=motion)


def validation_slider(dataset, clip_frames, batch_size, source, side="a"):
    """The windows of `dataset`'s validation part side by side, in order: each held-out frame once
    (of an unpaired dataset: of `side`'s, served as (clip, clip))."""
    frames = dataset.b if side == "b" and dataset.unpaired else dataset.a
    targets = frames if dataset.unpaired else dataset.b
    return ClipSlider(frames, targets, dataset.ranges("val", side), clip_frames, stride=clip_frames, batch_size=batch_size, shuffle=False,
                      source=source)
