"""build-dataset and split from the command line, and the dataset format they produce."""
import json

import cv2
import numpy as np
import pytest

from conftest import build, encode_frames, make_video, read_frames, run_cli
from datasets.build import build_dataset, derived_sources
from datasets.store import fingerprint, load_dataset
from metrics.scores import mean_psnr
from utils.size import Size


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
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "b.npy", "flow.json", "flow.npy", "flow_mask.npy", "meta.json"]


def derived(tmp_path, frames, pair, name="v"):
    """The dataset that build-dataset makes from lossless `frames` with `pair` (at their own size)."""
    video = encode_frames(frames, tmp_path / f"{name}.mkv")
    h, w = frames.shape[1:3]
    result = run_cli("build-dataset", "--video", video, "--pair", pair, "--size", f"{w}x{h}", "-o", tmp_path / name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ds = load_dataset(tmp_path / name)
    np.testing.assert_array_equal(ds.b, frames[:len(ds.b)])  # the target is the video itself
    return ds


def smooth_frames(n=12, h=32, w=48, seed=0):
    """Frames of soft colour blobs in mid-range values (noise seldom clips), moving a little."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:h, :w]
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    centres, colours = rng.uniform(0, 1, (4, 2)) * (w, h), rng.uniform(70, 180, (4, 3))
    for t in range(n):
        weights = np.stack([np.exp(-((xs - cx - t) ** 2 + (ys - cy) ** 2) / 80.0) for cx, cy in centres])
        frames[t] = np.rint(60 + (weights[..., None] * (colours[:, None, None] - 60)).sum(0).clip(0, 130))
    return frames


def test_gray_pair_uses_bt601_luma(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    ds = derived(tmp_path, frames, "gray")
    r, g, b = (frames[..., c].astype(np.float64) for c in range(3))
    luma = np.rint(0.299 * r + 0.587 * g + 0.114 * b)
    for channel in range(3):
        assert np.abs(ds.a[..., channel] - luma).max() <= 1  # float32 rounding may differ by one level


def test_blur_pair_is_a_gaussian_of_sigma_width_over_32(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)
    ds = derived(tmp_path, frames, "blur")
    for a, b in zip(ds.a, frames):  # sigma 64 / 32 = 2
        np.testing.assert_array_equal(a, cv2.GaussianBlur(b, (0, 0), sigmaX=2.0))
    assert np.abs(ds.a.astype(int) - cv2.GaussianBlur(frames[0], (0, 0), sigmaX=1.0)).max() > 0


def test_lowres_pair_loses_detail_finer_than_a_quarter(tmp_path):
    stripes = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    stripes[:, :, ::2] = 255  # one-pixel stripes vanish at a quarter of the size
    ds = derived(tmp_path, stripes, "lowres")
    assert np.abs(ds.a.astype(int) - 128).max() <= 2
    blocks = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    blocks[:, :, 16:] = 255  # a half-frame edge survives
    assert derived(tmp_path, blocks, "lowres", "blocks").a[:, :, :12].max() <= 10


def test_noise_pair_adds_gaussian_noise_of_sigma_25(tmp_path):
    frames = smooth_frames()
    ds = derived(tmp_path, frames, "noise")
    noise = ds.a.astype(np.float64) - frames
    assert abs(noise.mean()) < 0.5 and abs(noise.std() - 25.0) < 0.5
    assert mean_psnr(ds.a, frames) == pytest.approx(10 * np.log10(255 ** 2 / 25.0 ** 2), abs=0.2)  # 20.17 dB


def test_edges_pair_marks_only_the_edge(tmp_path):
    frames = np.zeros((3, 24, 32, 3), dtype=np.uint8)
    frames[:, :, 16:] = 200
    ds = derived(tmp_path, frames, "edges")
    columns = np.flatnonzero(ds.a[0, 12, :, 0])
    assert set(np.unique(ds.a)) == {0, 255} and set(columns) <= {15, 16} and len(columns) >= 1
    assert (ds.a[..., 0] == ds.a[..., 2]).all()


def test_compress_pair_is_the_video_through_libx264_at_that_crf(tmp_path):
    frames = smooth_frames(n=20, h=48, w=64, seed=3)
    frames = np.clip(frames.astype(int) + np.random.default_rng(3).integers(-20, 20, frames.shape), 0, 255).astype(np.uint8)
    heavy, light = derived(tmp_path, frames, "compress:45", "heavy"), derived(tmp_path, frames, "compress:15", "light")
    assert 20 < mean_psnr(heavy.a, frames) < mean_psnr(light.a, frames) - 3  # more compression, more damage
    video = encode_frames(frames, tmp_path / "oracle.mp4", codec=("-c:v", "libx264", "-crf", "45", "-preset", "veryfast",
                                                                 "-pix_fmt", "yuv420p"))
    oracle = read_frames(video)
    assert mean_psnr(heavy.a, oracle) > 40  # what ffmpeg's own libx264 at CRF 45 gives, give or take the encoder's threads
    meta = json.loads((tmp_path / "heavy" / "meta.json").read_text())
    assert meta["pair"] == "compress:45" and meta["identity_psnr"]["train"] == pytest.approx(mean_psnr(heavy.a[:18], frames[:18]))


def test_future_pair_targets_frame_t_plus_k_within_each_video(tmp_path, clip):
    second = make_video(tmp_path / "second.mp4", source="smptebars", seconds=1)
    build_dataset(tmp_path / "fut", derived_sources([clip, second], "future:3"), Size(16, 16))
    ds = load_dataset(tmp_path / "fut")
    assert [(s["start"], s["stop"]) for s in ds.meta["segments"]] == [(0, 47), (47, 69)]
    frames = read_frames(clip, size=(16, 16))
    np.testing.assert_array_equal(ds.a[:47], frames[:47])
    np.testing.assert_array_equal(ds.b[:47], frames[3:50])


def test_several_videos_after_one_video_flag_are_one_segment_each(tmp_path, clip):
    second = make_video(tmp_path / "second.mp4", source="smptebars", seconds=1)
    for name, flags in (("listed", ["--video", clip, second]), ("repeated", ["--video", clip, "--video", second])):
        result = run_cli("build-dataset", *flags, "--pair", "gray", "--size", "16", "-o", tmp_path / name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        meta = json.loads((tmp_path / name / "meta.json").read_text())
        assert [(s["video"], s["stop"] - s["start"]) for s in meta["segments"]] == [(str(clip), 50), (str(second), 25)]


def test_dataset_loads_memory_mapped(tmp_path, clip):
    build(tmp_path / "d", clip, "gray", 16)
    ds = load_dataset(tmp_path / "d", mmap=True)
    assert isinstance(ds.a, np.memmap) and ds.a.shape == (50, 16, 16, 3)
    np.testing.assert_array_equal(np.asarray(ds.b), load_dataset(tmp_path / "d").b)


def test_fingerprint_changes_with_content_not_with_location(tmp_path, clip):
    for name, pair in (("x", "gray"), ("y", "gray"), ("z", "blur")):
        build(tmp_path / name, clip, pair, 16)
    assert fingerprint(tmp_path / "x") == fingerprint(tmp_path / "y") != fingerprint(tmp_path / "z")


def test_meta_json_says_where_frames_came_from(tmp_path, clip):
    build(tmp_path / "d", clip, "future:2", 8, fps=10)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["segments"][0]["video"] == str(clip) and meta["fps"] == 10 and meta["pair"] == "future:2"
    assert meta["frames"] == 18


def write_sequences(root, lengths, rng, suffix=".png", parts=None):
    """A folder of sequences as REDS and Vimeo-90K lay them out: one subfolder of numbered frames
    per sequence (or, with `parts`, GoPro's: one subfolder per sequence holding a folder per part)."""
    frames = {}
    for name, count in lengths.items():
        for part in parts or [None]:
            folder = root / name / part if part else root / name
            folder.mkdir(parents=True)
            frames[name, part] = rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
            for index, frame in enumerate(frames[name, part]):
                cv2.imwrite(str(folder / f"{index:08d}{suffix}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return frames


def test_folders_of_sequences_are_matched_by_name_one_segment_each(tmp_path):
    rng = np.random.default_rng(0)
    a = write_sequences(tmp_path / "blur", {"000": 12, "001": 9}, rng)
    b = write_sequences(tmp_path / "sharp", {"000": 12, "001": 9}, rng, suffix=".ppm")  # any format OpenCV reads
    done = run_cli("build-dataset", "--a", tmp_path / "blur", "--b", tmp_path / "sharp", "-o", tmp_path / "d", "--size", "16",
                   "--val-fraction", "0.2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dataset = load_dataset(tmp_path / "d")
    assert [(s["start"], s["stop"]) for s in dataset.meta["segments"]] == [(0, 12), (12, 21)]
    np.testing.assert_array_equal(dataset.a[:12], a["000", None])
    np.testing.assert_array_equal(dataset.b[12:], b["001", None])


def test_gopro_s_blur_and_sharp_folders_inside_each_sequence(tmp_path):
    rng = np.random.default_rng(1)
    frames = write_sequences(tmp_path / "train", {"GOPR0372_07_00": 8, "GOPR0374_11_00": 10}, rng, parts=["blur", "sharp"])
    done = run_cli("build-dataset", "--a", tmp_path / "train", "--b", tmp_path / "train", "--parts", "blur,sharp",
                   "-o", tmp_path / "d", "--size", "16", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dataset = load_dataset(tmp_path / "d")
    assert len(dataset.meta["segments"]) == 2
    np.testing.assert_array_equal(dataset.a[:8], frames["GOPR0372_07_00", "blur"])
    np.testing.assert_array_equal(dataset.b[:8], frames["GOPR0372_07_00", "sharp"])


def test_sequences_that_do_not_match_are_refused_in_one_line(tmp_path):
    from conftest import assert_user_error

    rng = np.random.default_rng(2)
    write_sequences(tmp_path / "a", {"000": 6, "001": 6}, rng)
    write_sequences(tmp_path / "b", {"000": 6, "002": 6}, rng)
    names = run_cli("build-dataset", "--a", tmp_path / "a", "--b", tmp_path / "b", "-o", tmp_path / "d", "--quiet", cwd=tmp_path)
    assert_user_error(names, tmp_path / "a", "only in", "001", "002")
    write_sequences(tmp_path / "c", {"000": 6, "001": 5}, rng)
    counts = run_cli("build-dataset", "--a", tmp_path / "a", "--b", tmp_path / "c", "-o", tmp_path / "d", "--quiet", cwd=tmp_path)
    assert_user_error(counts, tmp_path / "a" / "001", "has 6 frames", "has 5", "--trim")
    assert not (tmp_path / "d").exists()


def test_frames_that_only_ffmpeg_reads_are_read_through_it(tmp_path):
    from media.frame_folder import load_image
    from media.process import ffmpeg_exe
    import subprocess

    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=32x24:r=5:d=1", "-frames:v", "2",
                    str(tmp_path / "f%03d.tga")], check=True)
    png = tmp_path / "same.png"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "f001.tga"), str(png)], check=True)
    np.testing.assert_array_equal(load_image(tmp_path / "f001.tga"), load_image(png))
