"""A clip generator run over a whole video, window by window, in constant memory.

Windows of `pool` frames overlap by `overlap`; each frame is generated exactly once, by the window
whose centre is nearest to it, so there are no seams, and the first and last frames are covered
(the last window is aligned to the video's end). A video shorter than one window is padded by
repeating its last frame, and the padding is cut off again.
    for inputs, outputs, targets in generate_stream(pairs, generate, pool=9, overlap=4): ...
"""
import numpy as np


def keep_until(start, next_start, pool):
    """End (exclusive) of the frames the window at `start` keeps, given the next window's start:
    up to the midpoint of the two windows' centres (ties go to the earlier window)."""
    return (start + next_start + pool - 1) // 2 + 1


def generate_stream(pairs, generate, pool, overlap=0, batch=1):
    """Run `generate` over a stream and yield aligned uint8 chunks (inputs, outputs, targets).

    `pairs` yields (inputs, targets) chunks, (n, H, W, 3) each, targets possibly None.
    `generate` maps uint8 clips (B, pool, H, W, 3) to generated clips of the same shape."""
    stride = pool - overlap
    inputs = targets = None  # frames from absolute index `base` on, kept until emitted
    base = total = emitted = next_start = 0
    scheduled, generated = [], []  # window starts waiting to run; (start, outputs) waiting to be emitted

    def run(starts):
        frames = np.asarray(starts)[:, None] - base + np.arange(pool)  # (B, pool) indices into the buffer
        clips = inputs[np.minimum(frames, len(inputs) - 1)]  # the min pads a too-short video with its last frame
        return list(zip(starts, generate(clips)))

    def emit(final):
        nonlocal emitted
        while generated:
            start, outputs = generated[0]
            following = generated[1][0] if len(generated) > 1 else (scheduled[0] if scheduled else None)
            if following is None and not final:
                return
            until = total if following is None else keep_until(start, following, pool)
            if until > emitted:
                part = slice(emitted - base, until - base)
                yield inputs[part], outputs[emitted - start: until - start], None if targets is None else targets[part]
                emitted = until
            generated.pop(0)

    for chunk_inputs, chunk_targets in pairs:
        inputs = chunk_inputs if inputs is None else np.concatenate([inputs, chunk_inputs])
        if chunk_targets is not None:
            targets = chunk_targets if targets is None else np.concatenate([targets, chunk_targets])
        total += len(chunk_inputs)
        while next_start + pool <= total:
            scheduled.append(next_start)
            next_start += stride
        while len(scheduled) >= batch:  # `batch` windows per forward pass, never more
            generated += run(scheduled[:batch])
            scheduled = scheduled[batch:]
        yield from emit(final=False)
        keep_from = min([emitted] + [s for s, _ in generated] + scheduled)
        inputs = inputs[keep_from - base:]
        targets = None if targets is None else targets[keep_from - base:]
        base = keep_from
    if total == 0:
        return
    last_start = max([s for s, _ in generated] + scheduled, default=-1)
    if last_start < 0 or last_start + pool < total:
        scheduled.append(max(0, total - pool))
    while scheduled:
        generated += run(scheduled[:batch])
        scheduled = scheduled[batch:]
    yield from emit(final=True)
