"""build-dataset against the JPEG round trip: frames per second of the whole process, same run.

Ours: `main.py build-dataset --pair future:1` (ffmpeg decodes and resizes into a pipe read straight
into the arrays; it writes both A and B). Baseline: ffmpeg splits the video to JPEG files, then a
Python loader reads each one back with OpenCV, resizes it and saves the array. The two alternate.
    python -m bench.decode              # a 2,000-frame 256 x 256 video to 64 x 64
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from utils.device import machine_summary
from media.process import ffmpeg_exe

REPO = Path(__file__).resolve().parent.parent

JPEG_LOADER = """
import sys, glob, cv2, numpy as np
files = sorted(glob.glob(sys.argv[1] + '/*.jpg'))
size = int(sys.argv[2])
frames = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA) for f in files])
np.save(sys.argv[3], frames)
"""


def timed(commands):
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "source.mp4"
        seconds = args.frames / 25
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={args.source_size}x{args.source_size}:r=25:d={seconds}",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
        ours = [[sys.executable, str(REPO / "main.py"), "build-dataset", "--video", str(video), "--pair", "future:1",
                 "--size", str(args.size), "-o", str(tmp / "ours"), "--overwrite"]]
        baseline = [[ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-q:v", "2", str(tmp / "jpg" / "%06d.jpg")],
                    [sys.executable, "-c", JPEG_LOADER, str(tmp / "jpg"), str(args.size), str(tmp / "baseline.npy")]]
        times = {"build-dataset": [], "JPEG split + load": []}
        for _ in range(args.rounds):
            times["build-dataset"].append(timed(ours))
            shutil.rmtree(tmp / "jpg", ignore_errors=True)
            (tmp / "jpg").mkdir()
            times["JPEG split + load"].append(timed(baseline))
    base = statistics.median(times["JPEG split + load"])
    print(machine_summary())
    print(f"{args.frames} frames of {args.source_size}x{args.source_size} to {args.size}x{args.size}; "
          f"whole process, median of {args.rounds} alternating rounds")
    print(f"{'variant':<20}{'seconds':>9}{'frames/s':>10}{'vs baseline':>13}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:<20}{seconds:>9.2f}{args.frames / seconds:>10.0f}{base / seconds:>12.1f}x")


if __name__ == "__main__":
    main()
