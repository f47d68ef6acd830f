"""The frame slider: window counts, segment boundaries, epochs across ranks, and exact batch assembly."""
import threading

import numpy as np
import pytest
import torch

from datasets.pipeline import InputPipeline
from datasets.slider import ClipSlider, window_starts
from utils.device import to_model_input
from utils.errors import DatasetError
from utils.size import Size


def coded_frames(n, h=6, w=8):
    """Frames whose pixels say where they come from: channel 0 = frame, 1 = row, 2 = column."""
    f, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    return np.stack([f, y, x], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("ranges,pool,step", [([(0, 30)], 9, 3), ([(0, 10), (10, 25), (25, 26)], 4, 2),
                                              ([(5, 40), (40, 48)], 9, 1), ([(0, 9)], 9, 5), ([(0, 100)], 7, 10)])
def test_window_count_matches_formula(ranges, pool, step):
    starts = window_starts(ranges, pool, step)
    assert len(starts) == sum((stop - start - pool) // step + 1 for start, stop in ranges if stop - start >= pool)
    brute = [s for start, stop in ranges for s in range(start, stop) if (s - start) % step == 0 and s + pool <= stop]
    assert starts.tolist() == brute


def test_window_never_crosses_segment():
    ranges = [(0, 13), (13, 29), (29, 40)]
    slider = ClipSlider(coded_frames(40), coded_frames(40), ranges, clip_frames=5, stride=2)
    for start in slider.starts:
        assert any(lo <= start and start + 5 <= hi for lo, hi in ranges)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_every_window_served_once_per_epoch_across_ranks(world_size, batch_size):
    frames = coded_frames(60)
    sliders = [ClipSlider(frames, frames, [(0, 31), (31, 60)], clip_frames=4, stride=1, batch_size=batch_size, seed=7,
                          rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in (0, 1):
        per_rank = [s.epoch_batches(epoch) for s in sliders]
        assert len({len(b) for b in per_rank}) == 1 == len({len(s) for s in sliders})  # same step count on every rank
        assert all(len(batch) > 0 for batches in per_rank for batch in batches)
        served = np.concatenate([np.concatenate(b) for b in per_rank])
        assert sorted(served.tolist()) == list(range(sliders[0].windows))


def test_epochs_are_shuffled_by_seed():
    frames = coded_frames(50)
    order = lambda seed, epoch: np.concatenate(ClipSlider(frames, frames, [(0, 50)], 3, batch_size=4, seed=seed).epoch_batches(epoch))
    np.testing.assert_array_equal(order(1, 0), order(1, 0))
    assert not np.array_equal(order(1, 0), order(1, 1))
    assert not np.array_equal(order(1, 0), order(2, 0))


def test_validation_windows_never_appear_in_training():
    frames = coded_frames(100)
    segments = [(0, 60, 54), (60, 100, 96)]  # (start, stop, val_start)
    train = ClipSlider(frames, frames, [(s, v) for s, _, v in segments], clip_frames=4, stride=1, batch_size=3)
    val = ClipSlider(frames, frames, [(v, e) for _, e, v in segments], clip_frames=4, stride=1, batch_size=3, shuffle=False)
    train_frames = {int(f) for a, _ in train.batches(0) for f in a[..., 0, 0, 0].ravel()}
    val_frames = {int(f) for a, _ in val.batches(0) for f in a[..., 0, 0, 0].ravel()}
    assert val_frames and train_frames and not train_frames & val_frames


def test_gathered_batch_equals_naive_per_clip_stack():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 6, 8, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 6, 8, 3), dtype=np.uint8)
    slider = ClipSlider(a, b, [(0, 40)], clip_frames=9, stride=3, batch_size=5, seed=3)
    for windows in slider.epoch_batches(0):
        got_a, got_b = slider.gather(windows)
        naive_a = np.stack([np.stack([a[s + t] for t in range(9)]) for s in slider.starts[windows]])
        naive_b = np.stack([np.stack([b[s + t] for t in range(9)]) for s in slider.starts[windows]])
        np.testing.assert_array_equal(got_a, naive_a)
        np.testing.assert_array_equal(got_b, naive_b)


def test_crop_and_flip_are_the_same_for_a_and_b_and_every_frame():
    a = coded_frames(30, h=12, w=16)
    b = 255 - a
    slider = ClipSlider(a, b, [(0, 30)], clip_frames=5, stride=1, batch_size=8, seed=1, crop=Size(7, 6), flip=True)  # 7 wide, 6 high
    flips = 0
    for number, windows in enumerate(slider.epoch_batches(0)):
        got_a, got_b = slider.gather(windows, 0, number)
        assert got_a.shape == (len(windows), 5, 6, 7, 3)
        np.testing.assert_array_equal(got_b, 255 - got_a)
        for clip, start in zip(got_a, slider.starts[windows]):
            naive = a[start:start + 5]
            y0, x_first, x_last = clip[0, 0, 0, 1], clip[0, 0, 0, 2], clip[0, 0, -1, 2]
            x0, flipped = min(x_first, x_last), x_first > x_last
            expected = naive[:, y0:y0 + 6, x0:x0 + 7]
            np.testing.assert_array_equal(clip, expected[:, :, ::-1] if flipped else expected)
            flips += flipped
    assert 0 < flips < slider.windows  # both orientations occur


def test_resumed_epoch_serves_the_same_remaining_batches():
    """A resumed run builds its slider anew and starts the epoch at its next batch."""
    a = coded_frames(40)
    make = lambda: ClipSlider(a, a, [(0, 40)], clip_frames=4, stride=2, batch_size=3, seed=5, crop=Size(4, 4), flip=True)  # noqa: E731
    full = [to_model_input(x, torch.device("cpu")) for x, _ in make().batches(2)]
    tail = [x for x, _, _ in InputPipeline(make(), torch.device("cpu"), prefetch=False).epoch(2, first=3)]
    assert len(tail) == len(full) - 3
    for x, y in zip(full[3:], tail):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_too_short_dataset_names_frames_and_pool():
    frames = coded_frames(20)
    with pytest.raises(DatasetError, match=r"have 6, 7 frames.*-pool 9"):
        ClipSlider(frames, frames, [(0, 6), (6, 13)], clip_frames=9, stride=1, source="data/tiny")


def test_model_input_is_float_nctwh_in_unit_range():
    clips = np.zeros((2, 3, 4, 5, 3), dtype=np.uint8)
    clips[0, 1, 2, 3] = (255, 0, 128)
    x = to_model_input(clips, torch.device("cpu"))
    assert x.shape == (2, 3, 3, 4, 5) and x.dtype == torch.float32 and x.is_contiguous()
    assert x[0, :, 1, 2, 3].tolist() == [1.0, -1.0, pytest.approx(128 / 127.5 - 1, abs=1e-6)]
    assert x.min().item() == -1.0
    last = to_model_input(clips, torch.device("cpu"), channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last_3d) and torch.equal(last, x)


@pytest.mark.parametrize("crop,flip", [(None, False), (Size(4, 3), True)])
def test_input_pipeline_gives_bit_for_bit_what_the_slider_gathers_from_any_batch_on(crop, flip):
    a = coded_frames(40, h=6, w=8)
    slider = ClipSlider(a, 255 - a, [(0, 40)], clip_frames=4, stride=2, batch_size=3, seed=5, crop=crop, flip=flip, rank=1, world_size=2)
    for prefetch in (True, False):  # ahead (as on CUDA) and in turn (as on a CPU)
        pipeline = InputPipeline(slider, torch.device("cpu"), prefetch=prefetch)
        for epoch, first in ((0, 0), (1, 2)):  # a resumed epoch starts at its next batch
            expected = list(slider.batches(epoch))[first:]
            got = list(pipeline.epoch(epoch, first))
            assert len(got) == len(expected) == len(slider) - first
            for (x, y, motion), (ea, eb) in zip(got, expected):
                assert torch.equal(x, to_model_input(ea, torch.device("cpu"))) and torch.equal(y, to_model_input(eb, torch.device("cpu")))
                assert motion is None  # no flow given


def test_the_stored_flow_is_cropped_and_flipped_with_its_clips():
    """A target whose every pixel moves one column right per frame, with flow that says so: after
    any crop and flip the clip's flow must still warp frame t-1 onto frame t."""
    n, h, w = 12, 6, 10
    b = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        b[t] = (np.arange(w)[None, :, None] - t) % w * 20 + np.arange(h)[:, None, None]  # frame t = frame t-1 moved right
    flow = np.zeros((n, h, w, 2), np.float16)
    flow[..., 0] = -1  # each pixel of frame t was one column left in frame t-1
    mask = np.ones((n, h, w), np.uint8)
    mask[..., 0] = 0  # the column that came in on the left
    slider = ClipSlider(b, b, [(0, n)], clip_frames=4, stride=2, batch_size=4, seed=3, crop=Size(5, 4), flip=True, motion=(flow, mask))
    flipped_any = False
    for number, windows in enumerate(slider.epoch_batches(0)):
        _, clips = slider.gather(windows, 0, number)
        flows, masks = slider.gather_motion(windows, 0, number)
        flipped_any |= bool((flows[..., 0] > 0).any())
        for clip, clip_flow, clip_mask in zip(clips, flows, masks):
            for t in range(1, len(clip)):
                xs = np.arange(clip.shape[2]) + clip_flow[t, 0, :, 0].astype(int)  # where each pixel was
                inside = (xs >= 0) & (xs < clip.shape[2]) & (clip_mask[t, 0] == 1)
                assert np.array_equal(clip[t][:, inside], clip[t - 1][:, xs[inside]])
    assert flipped_any


def test_input_pipeline_prefetching_prepares_the_next_batch_while_the_step_runs():
    a = coded_frames(30)
    gathered = [threading.Event() for _ in range(10)]

    class Recording(ClipSlider):
        def gather(self, windows, epoch=0, batch=0, out=None):
            clips = super().gather(windows, epoch, batch, out)
            gathered[batch].set()
            return clips

    slider = Recording(a, a, [(0, 30)], clip_frames=4, stride=3, batch_size=2)
    for number, _ in enumerate(InputPipeline(slider, torch.device("cpu"), prefetch=True).epoch(0)):  # as on CUDA
        if number + 1 < len(slider):  # "the step" of batch `number` waits for batch number + 1 to be gathered
            assert gathered[number + 1].wait(5), "the next batch was not prepared during the step"
