"""The demo end to end at a small budget, and its experiment report opened in headless Chromium."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from browser import inspect_page
from conftest import run_cli
from experiments.report import MAX_GRIDS
from media.probe import probe


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    # 10 steps beat the identity by about 0.9 dB; the time limit is far off, so the steps decide however fast this machine is
    result = run_cli("demo", "--steps", "10", "--seconds", "3600", cwd=work, timeout=900)
    assert result.returncode == 0, result.stderr
    return work, result


def test_demo_runs_the_pipeline_and_beats_the_identity_baseline(demo):
    work, result = demo
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert step in result.stdout
    assert "the model beats the identity baseline" in result.stdout
    evaluation = json.loads((work / "checkpoints" / "demo" / "evaluation.json").read_text())["scores"]
    assert evaluation["psnr"] > evaluation["psnr_identity"] and evaluation["l1"] < evaluation["l1_identity"]
    video = probe(work / "videos" / "sample_demo.mp4")
    assert video.frames == 300 and video.width == 3 * video.height
    for path in ("videos/sample_demo.mp4", "checkpoints/demo/index.html", "checkpoints/demo/last.pt"):
        assert path in result.stdout and (work / path).exists()


def test_report_opens_from_disk_with_every_image_and_video_loaded(demo):
    work, _ = demo
    page = work / "checkpoints" / "demo" / "index.html"
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text
    media, screenshot = inspect_page(page)
    images = [m for m in media if m["tag"] == "IMG"]
    videos = [m for m in media if m["tag"] == "VIDEO"]
    grids = list((page.parent / "samples").glob("epoch_*.png"))
    profiles = [m for m in images if "profile" in m["src"]]  # compare's temporal profile and the latest validation's
    assert grids and len(images) - len(profiles) == min(len(grids), MAX_GRIDS)  # the run's sample grids, latest first
    assert {Path(m["src"]).name for m in profiles} == {"sample_demo_profile.png", sorted(
        p.name for p in (page.parent / "samples").glob("profile_*.png"))[-1]}
    assert "masked warping error per frame pair" in text and text.count('class="mark"') > 10  # window switches marked
    assert len(videos) == 2  # the comparison and the latest epoch's video
    assert all(m["ok"] for m in media), media
    pixels = cv2.imdecode(np.frombuffer(screenshot, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None and pixels.std() > 20  # not a blank page
    assert (pixels < 250).mean() > 0.02  # a blank page has none; this one, of a single epoch, about 5%
