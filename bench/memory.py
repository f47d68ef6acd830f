"""Peak memory and frames/s of `compare` at growing frame sizes, with the default memory budget
(half of the memory free), next to the same run with no budget (whole frames, 4 windows per
forward pass, as before tiling existed) where that is expected to fit in this machine.

A checkpoint of the demo's network (gray -> colour U-Net, depth 3, 16 channels, (2+1)D; its weights
do not change the speed or the memory) runs over a moving test pattern with a sound track at each
size. Peak memory is the process's peak resident set, as the kernel counts it.
    python -m bench.memory
    python -m bench.memory --sizes 64x64 640x360 1280x720 3840x2160 --frames 600 48 24 9

Then tiles against whole frames, per output pixel, in this process: one window of the same network
over 9 frames of --tiled-size, whole, and in tiles of --tile-side pixels (halo included) computed
layer by layer (inference/layered.py), what waits between layers in RAM (compare's default) and on
disk (under --max-memory), with the earlier way (a pass over the tiles per norm layer,
inference/tiles.py's run_tiled) as the baseline; the ways alternate, medians of --rounds, with the
PSNR of each against whole frames.
    python -m bench.memory --only-tiles --tiled-size 1280x720 --tile-side 512
And the cost of tiles against their size: whole frames, and tiles of each side layer by layer in
RAM, per output pixel (the ways alternate; --json keeps the rows for bench/plots.py).
    python -m bench.memory --curve 128 192 256 384 512 --tiled-size 640x360 --json tiles.json
And whether the streamed ColorVideoVDP score keeps compare's memory flat: peak memory of compare at
128x128 over videos of growing length, with and without `--metrics jod` (the two alternate).
    python -m bench.memory --jod 150 600 2400
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import write_checkpoint
from utils.device import machine_summary
from media.process import ffmpeg_exe
from utils.memory import available_memory, human_bytes

REPO = Path(__file__).resolve().parent.parent
MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "print(r.stdout); print(r.stderr, file=sys.stderr); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(r.returncode)")
UNBOUNDED = "1000G"


def measured(args, cwd):
    """(seconds, peak resident bytes, stdout) of `python main.py ARGS`."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, str(REPO / "main.py"), *map(str, args)],
                            cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{result.stderr}")
    lines = result.stdout.strip().splitlines()
    return time.perf_counter() - started, int(lines[-1]), "\n".join(lines[:-1])


def test_video(path, size, frames):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25", "-f", "lavfi",
                    "-i", "sine", "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(path)], check=True)
    return path


def whole_frames_need(checkpoint, size):
    """Bytes the untiled forward pass of 4 windows of 9 frames would take, by the probe compare uses."""
    import torch

    from training.trained_model import load_model
    from inference.tiles import forward_cost

    generator = load_model(checkpoint, torch.device("cpu")).generator
    width, height = map(int, size.split("x"))
    fixed, per_pixel = forward_cost(generator, 9, torch.device("cpu"))
    return fixed + 4 * per_pixel * width * height


def demo_network_and_window(size, frames):
    """The demo's generator (on the CPU) and one random uint8 window (1, frames, H, W, 3) of `size` (WxH)."""
    import numpy as np
    import torch

    from training.trained_model import load_model

    with tempfile.TemporaryDirectory() as work:
        write_checkpoint(Path(work) / "demo")
        network = load_model(Path(work) / "demo", torch.device("cpu")).generator
    width, height = map(int, size.split("x"))
    return network, np.random.default_rng(0).integers(0, 256, (1, frames, height, width, 3), dtype=np.uint8)


def timed_in_turns(ways, rounds):
    """({name: median seconds}, {name: its last output}) of `ways` ({name: run()}), run in turns
    `rounds` times, so that the machine's drift is shared out."""
    import statistics

    import torch

    seconds, outputs = {name: [] for name in ways}, {}
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            with torch.inference_mode():
                outputs[name] = way()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}, outputs


def tiles_against_whole(size, tile_side, rounds, frames=9):
    """Seconds for one window of `frames` frames of `size` (WxH) whole, in tiles layer by layer, and
    in tiles a pass per norm layer; printed per output pixel against whole frames, with each one's PSNR."""
    import torch

    from inference.generate import SCRATCH_SHARE, ClipGenerator
    from inference.tiles import Tiling, norm_layers, run_tiled, tiling_halo
    from networks.layers import size_multiple
    from metrics.scores import mean_psnr
    from utils.size import Size

    network, clips = demo_network_and_window(size, frames)
    tiling = Tiling.aligned(Size(tile_side, tile_side), tiling_halo(network), size_multiple(network))
    generate = ClipGenerator(network, torch.device("cpu"))
    in_ram = ClipGenerator(network, torch.device("cpu"), tiling=tiling, scratch_memory=SCRATCH_SHARE * available_memory())
    on_disk = ClipGenerator(network, torch.device("cpu"), tiling=tiling)
    ways = {"whole frames": lambda: generate(clips),
            f"tiles of {tile_side}, layer by layer": lambda: in_ram(clips),
            f"tiles of {tile_side}, layer by layer, on disk": lambda: on_disk(clips),
            f"tiles of {tile_side}, a pass per norm layer": lambda: run_tiled(generate.generate, clips, tiling, norm_layers(network))}
    seconds, outputs = timed_in_turns(ways, rounds)
    print(f"\ntiles against whole frames: the demo's U-Net, one window of {frames} frames of {size}, {tiling.halo} pixels of "
          f"context on each side of a tile; median of {rounds} rounds, the ways alternating")
    print(f"  {'way':<42}{'seconds':>9}{'per output pixel':>18}{'PSNR vs whole':>15}")
    whole = seconds["whole frames"]
    for name, median in seconds.items():
        psnr = "-" if name == "whole frames" else f"{mean_psnr(outputs[name][0], outputs['whole frames'][0]):.1f} dB"
        print(f"  {name:<42}{median:>9.2f}{median / whole:>17.2f}x{psnr:>15}")


def tile_cost_curve(size, sides, rounds, json_path=None, frames=9):
    """Seconds per output pixel against whole frames for tiles of each side in `sides` (halo
    included), layer by layer with what waits between layers in RAM; printed, and kept as JSON."""
    import torch

    from inference.generate import SCRATCH_SHARE, ClipGenerator
    from inference.tiles import Tiling, tiling_halo
    from networks.layers import size_multiple
    from utils.size import Size

    network, clips = demo_network_and_window(size, frames)
    halo, multiple = tiling_halo(network), size_multiple(network)
    generators = {"whole frames": ClipGenerator(network, torch.device("cpu"))}
    for side in sides:
        tiling = Tiling.aligned(Size(side, side), halo, multiple)
        generators[side] = ClipGenerator(network, torch.device("cpu"), tiling=tiling, scratch_memory=SCRATCH_SHARE * available_memory())
    seconds, _ = timed_in_turns({name: lambda g=g: g(clips) for name, g in generators.items()}, rounds)
    whole = seconds["whole frames"]
    rows = [{"tile": side, "seconds": seconds[side], "per_pixel": seconds[side] / whole} for side in sides]
    print(f"\ntile size against time: the demo's U-Net, one window of {frames} frames of {size}, {halo} pixels of context on "
          f"each side of a tile, layer by layer in RAM; median of {rounds} rounds, the ways alternating")
    print(f"  {'tiles':<12}{'seconds':>9}{'per output pixel':>18}")
    print(f"  {'whole':<12}{whole:>9.2f}{1:>17.2f}x")
    for row in rows:
        print(f"  {row['tile']:<12}{row['seconds']:>9.2f}{row['per_pixel']:>17.2f}x")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_summary(), "size": size, "frames": frames, "halo": halo,
                                               "whole_seconds": whole, "rows": rows}, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64x64", "640x360", "1280x720"])
    parser.add_argument("--frames", nargs="+", type=int, default=[600, 48, 24])
    parser.add_argument("--tiled-size", default="1280x720", help="the frame size of the tiles-against-whole-frames rows")
    parser.add_argument("--tile-side", type=int, default=512, help="the tiles' side there, halo included")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the tiles-against-whole-frames rows")
    parser.add_argument("--only-tiles", action="store_true", help="only the tiles-against-whole-frames rows")
    parser.add_argument("--curve", nargs="+", type=int, metavar="SIDE", help="only the time against tile sides, these")
    parser.add_argument("--json", help="with --curve: keep its rows in this file")
    parser.add_argument("--jod", nargs="+", type=int, metavar="FRAMES", help="only compare's peak memory with and without "
                        "--metrics jod over videos of these lengths (128x128)")
    args = parser.parse_args()
    print(machine_summary())
    if args.jod:
        return jod_memory(args.jod)
    if args.curve:
        return tile_cost_curve(args.tiled_size, args.curve, args.rounds, args.json)
    if not args.only_tiles:
        compare_at_sizes(args)
    tiles_against_whole(args.tiled_size, args.tile_side, args.rounds)


def compare_at_sizes(args):
    print(f"memory free now {human_bytes(available_memory())}; the default budget is half of it")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        checkpoint = Path(work) / "demo"
        write_checkpoint(checkpoint)
        for size, frames in zip(args.sizes, args.frames):
            video = test_video(Path(work) / f"{size}.mp4", size, frames)
            variants = [("default budget", [])]
            if whole_frames_need(checkpoint, size) < 0.6 * available_memory():
                variants.append(("no budget", ["--max-memory", UNBOUNDED]))
            for name, extra in variants:
                out = Path(work) / f"{size}_compare.mp4"
                seconds, peak, stdout = measured(["compare", "--checkpoint", checkpoint, "--video", video, "-o", out, "--size", size,
                                                  "--quiet", "--overwrite", *extra], cwd=work)
                written = json.loads(out.with_suffix(".json").read_text())["frames"]
                plan = next((line for line in stdout.splitlines() if line.startswith("generating")), "")
                rows.append((size, name, written, seconds, peak, plan.split(";")[0].removeprefix("generating ")))
                print(f"{size:>10} {name:<15} {written:>4} frames  {written / seconds:7.2f} frames/s  peak {human_bytes(peak):>9}  {rows[-1][5]}",
                      flush=True)


def jod_memory(lengths, size="128x128"):
    """The streamed JOD holds a bounded queue of frames and a few floats per frame: its peak should not
    grow with the video. The memory budget is fixed so that free memory does not change the plan."""
    with tempfile.TemporaryDirectory() as work:
        checkpoint = Path(work) / "demo"
        write_checkpoint(checkpoint)
        print(f"{'frames':>6} {'without JOD':>12} {'with JOD':>12} {'difference':>11}  JOD")
        for frames in lengths:
            video = test_video(Path(work) / f"{frames}.mp4", size, frames)
            peaks, jod = {}, None
            for name, extra in (("without", []), ("with", ["--metrics", "jod"])):
                out = Path(work) / f"{frames}_{name}.mp4"
                _, peaks[name], _ = measured(["compare", "--checkpoint", checkpoint, "--video", video, "-o", out, "--size", size,
                                              "--max-memory", "4G", "--quiet", "--overwrite", *extra], cwd=work)
                if extra:
                    jod = json.loads(out.with_suffix(".json").read_text())["scores"]["jod"]
            print(f"{frames:>6} {human_bytes(peaks['without']):>12} {human_bytes(peaks['with']):>12} "
                  f"{human_bytes(peaks['with'] - peaks['without']):>11}  {jod:.3f}", flush=True)


if __name__ == "__main__":
    main()
