"""The generator over a whole video: every frame once, from the window centred nearest, in order."""
import numpy as np
import pytest

from inference.sliding import generate_stream


def run(n, pool, overlap, batch, chunk):
    """Frame t holds the value t; each generated frame records the start of the window that made it."""
    frames = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    windows = []

    def generate(clips):
        out = clips.copy()
        for i, clip in enumerate(clips):
            windows.append(int(clip[0, 0, 0, 0]))
            out[i, ..., 1] = clip[0, 0, 0, 0]  # channel 1: the window's first frame
        return out

    pairs = ((frames[i:i + chunk], 255 - frames[i:i + chunk]) for i in range(0, n, chunk))
    parts = list(generate_stream(pairs, generate, pool, overlap, batch))
    inputs, outputs, targets = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return inputs[:, 0, 0, 0], outputs[:, 0, 0, 0], outputs[:, 0, 0, 1], targets[:, 0, 0, 0], windows


@pytest.mark.parametrize("n", [1, 4, 9, 10, 23, 61])
@pytest.mark.parametrize("pool,overlap", [(1, 0), (4, 0), (4, 3), (9, 4), (9, 8), (5, 2)])
@pytest.mark.parametrize("batch,chunk", [(1, 1), (3, 7), (2, 64)])
def test_every_frame_is_generated_once_in_order(n, pool, overlap, batch, chunk):
    inputs, outputs, _, targets, _ = run(n, pool, overlap, batch, chunk)
    assert inputs.tolist() == outputs.tolist() == list(range(n))
    assert targets.tolist() == [255 - t for t in range(n)]


@pytest.mark.parametrize("n,pool,overlap", [(40, 9, 4), (37, 8, 6), (30, 5, 0)])
def test_each_frame_comes_from_the_window_centred_nearest_to_it(n, pool, overlap):
    _, _, made_by, _, windows = run(n, pool, overlap, batch=2, chunk=5)
    assert windows[-1] == n - pool  # the last window ends with the video
    for t, start in enumerate(made_by):
        distances = {s: abs(t - (s + (pool - 1) / 2)) for s in windows if s <= t < s + pool}
        assert distances[start] == min(distances.values())


def test_video_shorter_than_a_window_is_padded_and_cut_back():
    inputs, outputs, _, _, windows = run(3, pool=9, overlap=4, batch=1, chunk=2)
    assert outputs.tolist() == [0, 1, 2] and windows == [0]
