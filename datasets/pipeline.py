"""The input pipeline of training: each batch of an epoch gathered by the slider into reused
uint8 buffers (pinned memory on CUDA, so the copy to the GPU runs without the host waiting),
copied to the device and made float there. On CUDA this runs one batch ahead on a thread of its
own while the current step runs, so the GPU never waits on the host; on a CPU, where the step
already uses every core, in turn (bench/prefetch.py: ahead was 0.88x there). What it yields is
what the step would have gathered itself, bit for bit.

    pipeline = InputPipeline(slider, device); for x, y, motion in pipeline.epoch(3, first=0): step(x, y, motion)
"""
import torch

from utils.background import ahead
from utils.device import to_model_input

AHEAD = 1  # batches prepared ahead of the one in use


class InputPipeline:
    def __init__(self, slider, device, channels_last=False, prefetch=None):
        self.slider, self.device, self.channels_last = slider, device, channels_last
        self.prefetch = device.type == "cuda" if prefetch is None else prefetch
        size = slider.clip_size
        # A rank's last batch may hold one window more than the others.
        shape = (slider.batch_size + 1, slider.clip_frames, size.height, size.width, 3)
        pin = device.type == "cuda"
        self.buffers = [[torch.empty(shape, dtype=torch.uint8, pin_memory=pin) for _ in "ab"] for _ in range(AHEAD + 2)]
        self.copied = [None] * len(self.buffers)  # on CUDA: an event that says a buffer's copy to the GPU is done

    def epoch(self, epoch, first=0):
        """(x, y, motion) for batches `first`, `first` + 1, ... of this rank's share of `epoch`: x and
        y float (N, C, T, H, W) in [-1, 1] on the device; motion, when the slider serves the target's
        flow, (flow (N, 2, T, H, W) in pixels, mask (N, 1, T, H, W) of 0 and 1), else None."""
        batches = self._batches(epoch, first)
        if not self.prefetch:
            return batches
        # The thread's current CUDA device is its own (GPU 0 until set): this rank's, so that its
        # copies and events are on this rank's GPU, and no context is opened on GPU 0.
        on_start = (lambda: torch.cuda.set_device(self.device)) if self.device.type == "cuda" else None
        return ahead(batches, depth=AHEAD, on_start=on_start)

    def _batches(self, epoch, first):
        windows = self.slider.epoch_batches(epoch)
        for number in range(first, len(windows)):
            slot = number % len(self.buffers)  # a buffer is reused only after the batches in flight
            if self.copied[slot] is not None:
                self.copied[slot].synchronize()
            a, b = self.slider.gather(windows[number], epoch, number, out=self.buffers[slot])  # uint8 (B, T, H, W, 3)
            x, y = (to_model_input(clips, self.device, self.channels_last) for clips in (a, b))  # (N, C, T, H, W)
            if self.device.type == "cuda":  # the buffer is free again once the copies queued on this stream are done
                self.copied[slot] = torch.cuda.Event()
                self.copied[slot].record(torch.cuda.current_stream(self.device))
            yield x, y, self.motion(windows[number], epoch, number)

    def motion(self, windows, epoch, number):
        """The stored flow and mask of the batch on the device, or None (small next to the frames: not prefetched into buffers)."""
        if self.slider.motion is None:
            return None
        # Pinned (from torch's cache of pinned blocks) on CUDA: a copy from pageable memory would wait for the GPU.
        pinned = (torch.from_numpy(a).pin_memory() if self.device.type == "cuda" else torch.from_numpy(a)
                  for a in self.slider.gather_motion(windows, epoch, number))
        flow, mask = (tensor.to(self.device, non_blocking=True) for tensor in pinned)
        return flow.permute(0, 4, 1, 2, 3).float(), mask.unsqueeze(1).float()
