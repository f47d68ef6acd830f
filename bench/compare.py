"""`compare` as a whole process against the same job done the 2018 way, in the same run.

A 600-frame 64 x 64 clip and a checkpoint of the demo's network (a gray -> colour U-Net of depth 3,
16 channels and (2+1)D convolutions; its weights do not change the speed), or with --conv 3d the
same with full 3x3x3 convolutions (the demo's network before). Ours: `main.py compare`, which also scores
every frame (PSNR, SSIM, warping error) and writes input | generated | target. The baseline: ffmpeg
splits the video to JPEG files; each 9-frame window, every 3 frames, goes through the network one at
a time in float32 with autograd on; each generated frame is written as a JPEG (later windows
overwrite earlier ones); ffmpeg encodes the JPEGs with mpeg4. Beside them, `compare` in float32
(--amp off) and with the same network exported to ONNX and run by ONNX Runtime (--backend
onnxruntime, float32): the two backends side by side. All alternate; medians are printed.
    python -m bench.compare
    python -m bench.compare --conv 3d
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m bench.compare    # an AVX2-only CPU, approximately
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from commands.demo import NETWORK
from utils.device import machine_summary
from media.probe import probe
from media.process import ffmpeg_exe

REPO = Path(__file__).resolve().parent.parent
DEMO_NETWORK = {"channels": NETWORK["channels"], "depth": NETWORK["depth"], "temporal_pool": False}

BASELINE = """
import glob, os, subprocess, sys
import cv2, numpy as np, torch
from networks import build_generator
from runfolder.checkpoint import load_checkpoint
ffmpeg, video, work, checkpoint = sys.argv[1:5]
os.makedirs(work + "/in"); os.makedirs(work + "/out")
subprocess.run([ffmpeg, "-v", "error", "-i", video, "-q:v", "2", work + "/in/%06d.jpg"], check=True)
state = load_checkpoint(checkpoint)
net = build_generator("unet", **state["model_args"])
net.load_state_dict(state["generator"])
files = sorted(glob.glob(work + "/in/*.jpg"))
frames = [cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB) for f in files]
gray = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, -1) for f in frames]
for start in range(0, len(gray) - 9, 3):
    clip = torch.from_numpy(np.stack(gray[start:start + 9])).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    out = net(clip)[0].permute(1, 2, 3, 0).detach().numpy()
    for t, frame in enumerate(out):
        image = ((frame + 1) * 127.5).clip(0, 255).astype(np.uint8)
        cv2.imwrite(f"{work}/out/{start + t + 1:06d}.jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
subprocess.run([ffmpeg, "-v", "error", "-y", "-framerate", "25", "-i", work + "/out/%06d.jpg", "-c:v", "mpeg4", "-q:v", "3",
                work + "/out.mp4"], check=True)
"""


def write_checkpoint(folder, conv=NETWORK["conv"]):
    """An experiment folder holding the demo's network at initialisation, in train's format (plain data)."""
    import torch

    from networks import build_generator
    from runfolder.checkpoint import VERSION, save_checkpoint

    torch.manual_seed(0)
    args = {**DEMO_NETWORK, "conv": conv}
    generator = build_generator("unet", **args)
    config = {"pool": 9, "network": "unet", "data": "data/demo"}
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder, {"generator": generator.state_dict(), "network": "unet", "model_args": args, "config": config,
                             "step": 0, "version": VERSION, "dataset": {"pair": "gray", "width": 64, "height": 64, "fps": 25}})


def write_onnx(checkpoint, video, out):
    """The checkpoint's generator exported to ONNX (checked against PyTorch on the video's first frames)."""
    import torch

    from inference.export import export_onnx
    from media.decode import iter_frames
    from training.trained_model import load_model

    model = load_model(checkpoint, torch.device("cpu"))
    export_onnx(model, next(iter_frames(video, chunk_frames=model.clip_frames)), out)


def timed(command, env):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conv", choices=["3d", "2plus1d"], default=NETWORK["conv"])
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video, checkpoint = tmp / "clip.mp4", tmp / "demo"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=64x64:r=25:d={args.frames / 25}",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
        write_checkpoint(checkpoint, args.conv)
        write_onnx(checkpoint, video, tmp / "demo.onnx")
        compare = [sys.executable, str(REPO / "main.py"), "compare", "--video", str(video), "--overwrite"]
        variants = {"compare": [*compare, "--checkpoint", str(checkpoint), "-o", str(tmp / "compare.mp4")],
                    "compare fp32": [*compare, "--checkpoint", str(checkpoint), "--amp", "off", "-o", str(tmp / "compare fp32.mp4")],
                    "onnxruntime": [*compare, "--backend", "onnxruntime", "--model", str(tmp / "demo.onnx"), "-o", str(tmp / "onnxruntime.mp4")]}
        times = {name: [] for name in [*variants, "2018 way"]}
        for round_number in range(args.rounds):
            for name, command in variants.items():
                times[name].append(timed(command, env))
            work = tmp / f"baseline{round_number}"
            times["2018 way"].append(timed([sys.executable, "-c", BASELINE, ffmpeg_exe(), str(video), str(work), str(checkpoint)], env))
        frames = {**{name: probe(tmp / f"{name}.mp4").frames for name in variants}, "2018 way": probe(work / "out.mp4").frames}
    print(machine_summary())
    print(f"{args.frames} frames of 64x64, the demo's U-Net ({DEMO_NETWORK}, conv {args.conv}); whole process, median of "
          f"{args.rounds} alternating rounds")
    base = args.frames / statistics.median(times["2018 way"])
    print(f"{'variant':<14}{'seconds':>9}{'frames/s':>10}{'vs 2018':>9}{'frames out':>12}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:<14}{seconds:>9.2f}{args.frames / seconds:>10.1f}{args.frames / seconds / base:>8.1f}x{frames[name]:>12}")


if __name__ == "__main__":
    main()
