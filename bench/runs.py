"""`runs` over 200 run folders against a naive reader, whole process, same run.

Each synthetic run has a config.json, a metrics.jsonl of 2,000 loss lines and 100 validation lines,
and a real last.pt (a small U-Net's weights and optimizer state) with its JSON header. `runs` parses
only the lines it needs and reads the header; the naive reader parses every line and loads every
checkpoint with torch. They alternate; medians are printed.
    python -m bench.runs
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from utils.device import machine_summary

REPO = Path(__file__).resolve().parent.parent

NAIVE = """
import json, sys, torch
from pathlib import Path
rows = []
for folder in sorted(Path(sys.argv[1]).iterdir()):
    if not (folder / "config.json").exists():
        continue
    config = json.loads((folder / "config.json").read_text())
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    state = torch.load(folder / "last.pt", weights_only=True)
    psnr = [r["val/psnr"] for r in records if "val/psnr" in r]
    rows.append((folder.name, config["network"], state["step"], psnr[-1], max(psnr)))
print(len(rows))
"""


def make_runs(root, count):
    import torch

    from cli.train_flags import default_flags
    from networks import build_generator
    from runfolder.checkpoint import save_checkpoint
    from runfolder.config import write_config
    from runfolder.layout import RunFolder

    generator = build_generator("unet", channels=8, depth=3)
    weights = generator.state_dict()
    for i in range(count):
        folder = RunFolder(root / f"run{i:03d}")
        folder.path.mkdir()
        config = {**default_flags(), "name": folder.name, "seed": i % 3, "channels": 8}
        write_config(folder, config)
        lines = [{"step": 0, "epoch": 1, "event": "started", "parameters/generator": 1000}]
        for step in range(1, 2001):
            lines.append({"step": step, "epoch": step // 20 + 1, "loss/g_adv": 0.7, "loss/g_l1": 0.1, "loss/d_real": 0.6,
                          "loss/d_fake": 0.6, "lr": 2e-4, "time/clips_per_s": 7.5, "time/data_share": 0.001})
            if step % 20 == 0:
                lines.append({"step": step, "epoch": step // 20, "val/psnr": 15 + step / 1000, "val/psnr_identity": 12.0,
                              "val/ssim": 0.6, "val/ssim_identity": 0.4, "val/masked_warp_error": 0.02, "val/flicker": 1.2, "val/l1": 0.1})
        lines.append({"step": 2000, "epoch": 100, "event": "finished"})
        folder.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
        save_checkpoint(folder, {"generator": weights, "opt_g": {"state": {}}, "step": 2000, "epoch": 100, "finished": True,
                                 "network": "unet", "model_args": {}, "config": config, "version": 1,
                                 "rng": {"torch": torch.get_rng_state()}})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_runs(root, args.runs)
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        commands = {"runs": [sys.executable, str(REPO / "main.py"), "runs", "--checkpoints", str(root), "--json"],
                    "naive (all lines, torch.load)": [sys.executable, "-c", NAIVE, str(root)]}
        times = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["naive (all lines, torch.load)"])
    print(machine_summary())
    print(f"{args.runs} runs ({size / 1e6:.0f} MB on disk: 2,100 metrics lines and a checkpoint each); "
          f"whole process, median of {args.rounds} alternating rounds")
    print(f"{'reader':<32}{'seconds':>9}{'vs naive':>10}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:<32}{seconds:>9.2f}{base / seconds:>9.1f}x")


if __name__ == "__main__":
    main()
