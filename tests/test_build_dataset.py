"""build-dataset and split from the command line, and the dataset format they produce."""
import json

import numpy as np
import pytest

from conftest import encode_frames, make_video, run_cli
from datasets.store import build_dataset, derive_input, fingerprint, load_dataset
from utils.ffmpeg import read_frames


def test_split_writes_numbered_frames_at_fps_and_size(tmp_path, clip):
    result = run_cli("split", clip, "-o", tmp_path / "frames", "--fps", 5, "--size", "32x24", "--format", "png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "frames").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(1, 11)]
    assert "wrote 10 frames (32x24, png)" in result.stdout
    assert read_frames(tmp_path / "frames").shape == (10, 24, 32, 3)


def test_split_png_frames_are_exactly_the_decoded_frames(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (8, 20, 24, 3), dtype=np.uint8)
    video = encode_frames(frames, tmp_path / "v.mkv")
    assert run_cli("split", video, "--format", "png", cwd=tmp_path).returncode == 0
    np.testing.assert_array_equal(read_frames(tmp_path / "v_frames"), frames)


def test_paired_dataset_keeps_pairs_aligned_and_marks_segments(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    a1, b1 = encode_frames(frames[:20], tmp_path / "a1.mkv"), encode_frames(255 - frames[:20], tmp_path / "b1.mkv")
    a2, b2 = encode_frames(frames[20:], tmp_path / "a2.mkv"), encode_frames(255 - frames[20:], tmp_path / "b2.mkv")
    out = tmp_path / "data" / "ab"
    result = run_cli("build-dataset", "--a", a1, "--b", b1, "--a", a2, "--b", b2, "-o", out, "--size", 16, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "30 frames of 16x16" in result.stdout and "2 segments" in result.stdout and "27 train / 3 validation" in result.stdout
    ds = load_dataset(out)
    np.testing.assert_array_equal(ds.a, frames)
    np.testing.assert_array_equal(ds.b, 255 - frames)
    assert [(s["start"], s["val_start"], s["stop"]) for s in ds.meta["segments"]] == [(0, 18, 20), (20, 29, 30)]
    assert ds.ranges("train") == [(0, 18), (20, 29)] and ds.ranges("val") == [(18, 20), (29, 30)]
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "b.npy", "meta.json"]


@pytest.mark.parametrize("pair", ["gray", "edges", "blur", "lowres", "noise"])
def test_derived_pairs_turn_the_video_into_input_and_target(tmp_path, sample_video, pair):
    meta = build_dataset(tmp_path / pair, videos=[sample_video], pair=pair, size=(32, 32), fps=5)
    ds = load_dataset(tmp_path / pair)
    assert ds.a.shape == ds.b.shape == (60, 32, 32, 3) and meta["pair"] == pair
    np.testing.assert_array_equal(ds.b, read_frames(sample_video, size=(32, 32), fps=5))
    np.testing.assert_array_equal(ds.a, derive_input(ds.b, pair, np.random.default_rng(0)))
    assert not np.array_equal(ds.a, ds.b)
    if pair == "gray":
        assert (ds.a[..., 0] == ds.a[..., 1]).all() and (ds.a[..., 1] == ds.a[..., 2]).all()
    if pair == "edges":
        assert set(np.unique(ds.a)) <= {0, 255}


def test_future_pair_targets_frame_t_plus_k_within_each_video(tmp_path, clip):
    second = make_video(tmp_path / "second.mp4", source="smptebars", seconds=1)
    build_dataset(tmp_path / "fut", videos=[clip, second], pair="future:3", size=(16, 16))
    ds = load_dataset(tmp_path / "fut")
    assert [(s["start"], s["stop"]) for s in ds.meta["segments"]] == [(0, 47), (47, 69)]
    frames = read_frames(clip, size=(16, 16))
    np.testing.assert_array_equal(ds.a[:47], frames[:47])
    np.testing.assert_array_equal(ds.b[:47], frames[3:50])


def test_dataset_loads_memory_mapped(tmp_path, clip):
    build_dataset(tmp_path / "d", videos=[clip], pair="gray", size=(16, 16))
    ds = load_dataset(tmp_path / "d", mmap=True)
    assert isinstance(ds.a, np.memmap) and ds.a.shape == (50, 16, 16, 3)
    np.testing.assert_array_equal(np.asarray(ds.b), load_dataset(tmp_path / "d").b)


def test_fingerprint_changes_with_content_not_with_location(tmp_path, clip):
    build_dataset(tmp_path / "x", videos=[clip], pair="gray", size=(16, 16))
    build_dataset(tmp_path / "y", videos=[clip], pair="gray", size=(16, 16))
    build_dataset(tmp_path / "z", videos=[clip], pair="blur", size=(16, 16))
    assert fingerprint(tmp_path / "x") == fingerprint(tmp_path / "y") != fingerprint(tmp_path / "z")


def test_meta_json_says_where_frames_came_from(tmp_path, clip):
    build_dataset(tmp_path / "d", videos=[clip], pair="future:2", size=(8, 8), fps=10)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["segments"][0]["video"] == str(clip) and meta["fps"] == 10 and meta["pair"] == "future:2"
    assert meta["frames"] == 18
