"""A clip generator run over a whole video, window by window, in constant memory.

Windows of `length` frames overlap by `overlap`; the last window is aligned to the video's end, so
the first and last frames are covered, and each frame is emitted exactly once, in order. A frame
belongs to the window whose centre is nearest to it (ties go to the earlier window): where that
changes, the window switches. With `blend` (the default), a frame that two windows generated is
their weighted mean, with weights that rise from zero over a window's first `overlap` frames and
fall to zero over its last, so one window hands over to the next gradually instead of at one
frame pair; without it, the frame is its own window's output alone. A video shorter than one
window is padded by repeating its last frame, and the padding is cut off again.

    for chunk in generate_stream(pairs, generate, length=9, overlap=4):
        chunk.inputs, chunk.outputs, chunk.targets, chunk.switched
"""
from typing import NamedTuple

import numpy as np


class Chunk(NamedTuple):
    """Consecutive frames of one window, uint8 (n, H, W, 3) each (targets may be None). `switched`:
    the frame before these belongs to another window (the pair across the start is a switch)."""

    inputs: np.ndarray
    outputs: np.ndarray
    targets: np.ndarray | None
    switched: bool


def blend_weights(length, overlap):
    """A window's weight at each of its frames: 1 inside, falling linearly towards each edge over
    `overlap` frames (so two windows that overlap by `overlap` have weights summing to 1 there)."""
    position = np.arange(length)
    return np.minimum(1.0, np.minimum(position + 1, length - position) / (overlap + 1))


def own_window(frame, starts, length):
    """The start of the window, among `starts`, that `frame` belongs to: centre nearest, ties earliest."""
    covering = [s for s in starts if s <= frame < s + length]
    return min(covering, key=lambda s: (abs(frame - s - (length - 1) / 2), s))


def frame_output(frame, window, generated, weights):
    """uint8 frame `frame`: `window`'s output, or with `weights` (blend_weights) the weighted mean of
    every window in `generated` ({start: outputs}) that covers it."""
    covering = [s for s in generated if s <= frame < s + len(generated[s])]
    if weights is None or len(covering) == 1:
        return generated[window][frame - window]
    w = np.array([weights[frame - s] for s in covering])
    mixed = sum(wi * generated[s][frame - s].astype(np.float32) for wi, s in zip(w, covering)) / w.sum()
    return np.rint(mixed).astype(np.uint8)


def generate_stream(pairs, generate, length, overlap=0, batch=1, blend=True):
    """Run `generate` over a stream and yield Chunks of aligned frames, in order.

    `pairs` yields (inputs, targets) chunks, (n, H, W, 3) each, targets possibly None.
    `generate` maps uint8 clips (B, length, H, W, 3) to generated clips of the same shape."""
    stride = length - overlap
    weights = blend_weights(length, overlap)
    inputs = targets = None  # frames from absolute index `base` on, kept until emitted
    base = total = emitted = next_start = 0
    scheduled, generated = [], {}  # window starts waiting to run; start -> uint8 outputs, kept while needed
    last_window = None  # the window of the last frame emitted

    def run(starts):
        frames = np.asarray(starts)[:, None] - base + np.arange(length)  # (B, length) indices into the buffer
        clips = inputs[np.minimum(frames, len(inputs) - 1)]  # the min pads a too-short video with its last frame
        generated.update(zip(starts, generate(clips)))

    def emit(until):
        """Chunks for frames [emitted, until): every window that covers them has run."""
        nonlocal emitted, last_window
        while emitted < until:
            window = own_window(emitted, generated, length)
            end = emitted + 1
            while end < until and own_window(end, generated, length) == window:
                end += 1
            part = slice(emitted - base, end - base)
            outputs = np.stack([frame_output(f, window, generated, weights if blend else None) for f in range(emitted, end)])
            yield Chunk(inputs[part], outputs, None if targets is None else targets[part],
                        switched=last_window is not None and window != last_window)
            emitted, last_window = end, window
            for start in [s for s in generated if s + length <= emitted]:
                del generated[start]

    for chunk_inputs, chunk_targets in pairs:
        inputs = chunk_inputs if inputs is None else np.concatenate([inputs, chunk_inputs])
        if chunk_targets is not None:
            targets = chunk_targets if targets is None else np.concatenate([targets, chunk_targets])
        total += len(chunk_inputs)
        while next_start + length <= total:
            scheduled.append(next_start)
            next_start += stride
        while len(scheduled) >= batch:  # `batch` windows per forward pass, never more
            run(scheduled[:batch])
            scheduled = scheduled[batch:]
        # Windows still to come start at a scheduled start, or (the one aligned to the end) at total - length or later.
        yield from emit(min(scheduled + [max(0, total - length)]))
        keep_from = min([emitted] + list(generated) + scheduled)
        inputs = inputs[keep_from - base:]
        targets = None if targets is None else targets[keep_from - base:]
        base = keep_from
    if total == 0:
        return
    last_start = next_start - stride  # the last window scheduled (negative when none was)
    if last_start < 0 or last_start + length < total:
        scheduled.append(max(0, total - length))
    while scheduled:
        run(scheduled[:batch])
        scheduled = scheduled[batch:]
    yield from emit(total)
