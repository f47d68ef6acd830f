"""ColorVideoVDP (Mantiuk et al., SIGGRAPH 2024), through the `cvvdp` package: a calibrated model of
human vision that sees blur, noise, colour shifts and flicker, scored in JOD (just-objectionable
differences): 10 is no visible difference from the reference, and one JOD less means 75% of
viewers would pick the other video. Its calibration ships in the wheel; it runs offline, in torch,
on the device asked.

The display model is the same everywhere, and recorded with each score (DISPLAY_RECORD): vgan's
frames are small (64 to 256 pixels a side) and watched on a desktop screen pixel for pixel, which
is cvvdp's `standard_fhd`: a 24-inch 1920x1080 monitor seen from 0.6 m (37.8 pixels per degree),
200 cd/m² peak, in office light (250 lux).

    jod(generated, target, fps=25)                   # uint8 (n, H, W, 3) each -> 9.3
    stream = JodStream(frames=500, fps=25, memory=4e9); stream.add(generated_chunk, target_chunk); ...; stream.result()
On a GPU cvvdp sizes its blocks of frames against nearly all the memory free, up to the whole
video; a stream given a `memory` budget has a cvvdp of its own capped to it (`gpu_mem`), so that
two streams side by side (compare's generated video and its identity) share what compare keeps.
"""
import functools
import logging
import queue
import threading

import numpy as np
import torch

from metrics.frames import on_device

DISPLAY = "standard_fhd"
DISPLAY_RECORD = {"display": DISPLAY, "diagonal_inches": 24, "resolution": [1920, 1080], "viewing_distance_m": 0.6,
                  "pixels_per_degree": 37.8, "peak_cd_m2": 200, "ambient_lux": 250}
WAITING_FRAMES = 16  # frames that may wait between the video's producer and cvvdp: memory stays flat


def build_colorvideovdp(device="cpu", memory=None):
    """A cvvdp of its own on `device`, its blocks of frames sized to at most `memory` bytes (None: what the GPU has free)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" on import, on a CPU
    import pycvvdp

    return pycvvdp.cvvdp(display_name=DISPLAY, quiet=True, device=torch.device(device), gpu_mem=None if memory is None else memory / 1e9)


colorvideovdp = functools.lru_cache(maxsize=None)(build_colorvideovdp)  # its tables and filters are built once per device


def per_frame_jods(metric, q_per_channel):
    """Each frame's JOD, by cvvdp's own pooling over a video that holds that frame's quality alone,
    for every frame in one batched call (no host sync per frame): `q_per_channel` (1, channels,
    frames, bands) becomes a batch of two-frame videos, each frame twice."""
    q = q_per_channel[0].permute(1, 0, 2)[:, :, None, :]  # (frames, channels, 1, bands)
    return metric.do_pooling_and_jods(torch.cat([q, q], dim=2)).reshape(-1).tolist()


def jod(generated, target, fps, device="cpu"):
    """JOD of uint8 frames (n, H, W, 3) against the target's, as one video at `fps`."""
    metric = colorvideovdp(str(device))
    with torch.inference_mode():
        q, _ = metric.predict(torch.from_numpy(np.ascontiguousarray(generated)), torch.from_numpy(np.ascontiguousarray(target)),
                              dim_order="FHWC", frames_per_second=fps if len(generated) > 1 else 0)
    return float(q)


WINDOWS_PER_CALL = 16  # validation's windows scored together, a batch of videos in one cvvdp call


def mean_jod(generated, target, fps, device="cpu", weights=None):
    """The mean JOD of uint8 windows (N, T, H, W, 3), each scored as a video of its own (as the
    temporal scores keep their frame pairs within each window), WINDOWS_PER_CALL at a time in one
    cvvdp call (`dim_order="BFHWC"`: one JOD per window)."""
    metric, scores = colorvideovdp(str(device)), []
    for start in range(0, len(generated), WINDOWS_PER_CALL):
        batch = [torch.from_numpy(np.ascontiguousarray(frames[start:start + WINDOWS_PER_CALL])) for frames in (generated, target)]
        with torch.inference_mode():
            q, _ = metric.predict(*batch, dim_order="BFHWC", frames_per_second=fps if generated.shape[1] > 1 else 0)
        scores += q.reshape(-1).tolist()
    return float(np.mean(scores))


class FrameCountError(ValueError):
    """A stream gave another number of frames than it announced: cvvdp needs the length first."""


class JodStream:
    """The JOD of a video fed chunk by chunk, the same number cvvdp gives for the whole video: cvvdp
    reads the frames in order from a source that waits for them, in a thread of its own, and at most
    WAITING_FRAMES frames wait between the two, so memory does not grow with the video's length.
    `frames` is the video's length, which cvvdp needs before its first frame."""

    def __init__(self, frames, fps, device="cpu", weights=None, memory=None):
        self.pending = queue.Queue(maxsize=WAITING_FRAMES)
        self.frames, self.fps, self.device = frames, fps, str(device)
        # With a budget, a cvvdp of its own: cvvdp keeps its block size on the object, and two streams run side by side.
        self.metric = build_colorvideovdp(self.device, memory) if memory is not None else colorvideovdp(self.device)
        self.added, self.outcome = 0, {}
        self.thread = threading.Thread(target=self._run, name="cvvdp", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            metric = self.metric
            with torch.inference_mode():
                q, stats = metric.predict_video_source(PushedFrames(self.pending, self.frames, self.fps, metric.display_photometry))
                self.outcome["curve"] = per_frame_jods(metric, torch.as_tensor(stats["Q_per_ch"], device=metric.device))
            self.outcome["jod"] = float(q)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked, in add() or result()
            self.outcome["error"] = exc

    def add(self, generated, target):
        if self.added + len(generated) > self.frames:
            raise FrameCountError(f"gave more frames than the {self.frames} it was expected to have")
        self.added += len(generated)
        for pair in zip(generated, target):
            while True:
                if "error" in self.outcome:
                    raise self.outcome["error"]
                try:
                    self.pending.put(pair, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def result(self):
        """(JOD, each frame's JOD) once every frame was added."""
        if self.added < self.frames:
            self.pending.put(None)  # the source stops cvvdp where it waits for a frame that will not come
            self.thread.join()
            raise FrameCountError(f"gave {self.added} frames, not the {self.frames} it was expected to have")
        self.thread.join()
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["jod"], self.outcome["curve"]


class PushedFrames:
    """A cvvdp video source whose frames arrive through a queue, in order: (generated, target) uint8 (H, W, 3)."""

    def __init__(self, pending, frames, fps, display_photometry):
        from pycvvdp.video_source import video_source_dm

        self.pending, self.frames, self.fps = pending, frames, fps
        self.display = video_source_dm(display_photometry=display_photometry)
        self.head = self.target = self.shape = None  # the frame pair read ahead, the target's frame, (H, W)

    def get_video_size(self):
        if self.shape is None:  # the first frame gives the size
            self._next()
        return self.shape[0], self.shape[1], self.frames

    def get_batch_size(self):
        return 1

    def get_frames_per_second(self):
        return self.fps

    def _next(self):
        pair = self.pending.get()
        if pair is None:
            raise FrameCountError("fewer frames than expected")
        self.shape, self.head = pair[0].shape, pair

    def get_test_frame(self, frame, device, colorspace):
        if self.head is None:
            self._next()
        generated, self.target = self.head
        self.head = None
        return self._converted(generated, device, colorspace)

    def get_reference_frame(self, frame, device, colorspace):
        return self._converted(self.target, device, colorspace)

    def _converted(self, frame, device, colorspace):
        pixels = on_device(frame, device).permute(2, 0, 1)[None, :, None].float() / 255
        return self.display.apply_dm_and_color_transform(pixels, colorspace)
