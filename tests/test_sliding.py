"""The generator over a whole video: every frame once, in order, from the window centred nearest or
blended between the windows that made it."""
import numpy as np
import pytest

from inference.sliding import generate_stream


def run(n, pool, overlap, batch, chunk, blend=True):
    """Frame t holds the value t; each generated frame records the start of the window that made it
    (blended, the weighted mean of those starts); also returns each frame's `switched` flag."""
    frames = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    windows = []

    def generate(clips):
        out = clips.copy()
        for i, clip in enumerate(clips):
            windows.append(int(clip[0, 0, 0, 0]))
            out[i, ..., 1] = clip[0, 0, 0, 0]  # channel 1: the window's first frame
        return out

    pairs = ((frames[i:i + chunk], 255 - frames[i:i + chunk]) for i in range(0, n, chunk))
    parts = list(generate_stream(pairs, generate, pool, overlap, batch, blend))
    inputs, outputs, targets = (np.concatenate([p[k] for p in parts]) for k in range(3))
    switched = [p.switched and i == 0 for p in parts for i in range(len(p.inputs))]
    return inputs[:, 0, 0, 0], outputs[:, 0, 0, 0], outputs[:, 0, 0, 1], targets[:, 0, 0, 0], windows, switched


@pytest.mark.parametrize("n", [1, 4, 9, 10, 23, 61])
@pytest.mark.parametrize("pool,overlap", [(1, 0), (4, 0), (4, 3), (9, 4), (9, 8), (5, 2)])
@pytest.mark.parametrize("batch,chunk", [(1, 1), (3, 7), (2, 64)])
@pytest.mark.parametrize("blend", [True, False])
def test_every_frame_is_generated_once_in_order(n, pool, overlap, batch, chunk, blend):
    inputs, outputs, _, targets, _, _ = run(n, pool, overlap, batch, chunk, blend)
    assert inputs.tolist() == outputs.tolist() == list(range(n))  # windows that agree blend to the same frame
    assert targets.tolist() == [255 - t for t in range(n)]


def nearest(t, windows, pool):
    distances = {s: abs(t - (s + (pool - 1) / 2)) for s in windows if s <= t < s + pool}
    return min(distances, key=lambda s: (distances[s], s))


@pytest.mark.parametrize("n,pool,overlap", [(40, 9, 4), (37, 8, 6), (30, 5, 0)])
def test_without_blending_each_frame_comes_from_the_window_centred_nearest_to_it(n, pool, overlap):
    _, _, made_by, _, windows, switched = run(n, pool, overlap, batch=2, chunk=5, blend=False)
    assert windows[-1] == n - pool  # the last window ends with the video
    assert made_by.tolist() == [nearest(t, windows, pool) for t in range(n)]
    assert switched == [t > 0 and made_by[t] != made_by[t - 1] for t in range(n)]


@pytest.mark.parametrize("n,pool,overlap", [(40, 9, 4), (37, 8, 6), (23, 5, 2), (30, 5, 0)])
def test_blending_weighs_each_window_down_to_zero_at_its_edges(n, pool, overlap):
    _, _, blended, _, windows, switched = run(n, pool, overlap, batch=2, chunk=5)
    for t in range(n):
        covering = [s for s in windows if s <= t < s + pool]
        # a tent over the overlap: 1/(overlap+1), 2/(overlap+1), ... from each edge in, 1 in the middle
        weights = [min(1, (t - s + 1) / (overlap + 1), (s + pool - t) / (overlap + 1)) for s in covering]
        assert blended[t] == round(sum(w * s for w, s in zip(weights, covering)) / sum(weights))
    # the switches are where the nearest window changes, as without blending
    assert switched == [t > 0 and nearest(t, windows, pool) != nearest(t - 1, windows, pool) for t in range(n)]
    if overlap:
        step = np.diff(blended[: n - pool]).astype(int)  # before the last window, which is aligned to the end
        assert step.max() <= -(-(pool - overlap) // (overlap + 1)) + 1  # a window's start is handed over in steps


def test_video_shorter_than_a_window_is_padded_and_cut_back():
    inputs, outputs, _, _, windows, _ = run(3, pool=9, overlap=4, batch=1, chunk=2)
    assert outputs.tolist() == [0, 1, 2] and windows == [0]
