"""Frames as the metric streams take them: uint8 (n, H, W, 3), a numpy array or a tensor already on
the device. compare uploads each chunk once, through pinned memory and without blocking, and hands
the same tensors to every stream; validation and the tests hand them numpy arrays.

    frames = uploaded(chunk.outputs, "cuda")       # a tensor on the GPU (numpy as it is on a CPU)
    x = on_device(frames, "cuda")                  # no copy when it is there already
"""
import numpy as np
import torch

BLOCK_FRAMES = 8  # the learned metrics' batches: a few fixed shapes, so cuDNN's benchmark mode tunes each once, not per chunk


def on_device(frames, device):
    """`frames` as a uint8 tensor on `device`: a tensor there already is taken as it is."""
    if isinstance(frames, torch.Tensor):
        return frames.to(device)
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device)


def joined(first, second):
    """Frames held back from the last chunk, then the new chunk's, as the chunk's own kind."""
    return torch.cat([on_device(first, second.device), second]) if isinstance(second, torch.Tensor) else np.concatenate([first, second])


def uploaded(frames, device):
    """`frames` on `device` once for every stream that scores them: on a GPU through pinned memory,
    without blocking (the copy is ordered before the streams' kernels on the same CUDA stream, and
    torch keeps the pinned buffer until it is done); elsewhere, or None, as they are."""
    if frames is None or torch.device(device).type != "cuda":
        return frames
    return torch.from_numpy(np.ascontiguousarray(frames)).pin_memory().to(device, non_blocking=True)


def in_blocks(frames, size=BLOCK_FRAMES):
    """`frames` in consecutive blocks of `size` (the last may be shorter): compare's chunks come in
    many lengths, and every new shape would send cuDNN's benchmark mode tuning again."""
    return [frames[start:start + size] for start in range(0, len(frames), size)]
