"""The documentation's charts, drawn with the report pages' own SVG code (experiments/html.py) from
what the benches and runs wrote. Each chart says in its title what it shows; the docs say when and
on which machine its numbers were measured.

    python -m bench.plots curves checkpoints/guide -o docs/images/guide_psnr.svg     # PSNR against steps, per structure
    python -m bench.plots tiles tiles.json -o docs/images/tiling_cost.svg            # from bench.memory --curve --json
    python -m bench.plots flicker docs/data/flicker_by_task.csv -o docs/images/flicker_by_task.svg
"""
import argparse
import csv
import json
import statistics
from pathlib import Path

from experiments.html import svg_bars, svg_chart
from experiments.runs import group_key, group_label
from runfolder.config import read_config
from runfolder.layout import CheckpointsRoot
from runfolder.metrics import read_metrics


def psnr_curves(checkpoints):
    """Validation PSNR against steps, the mean over each seed group's runs, and the identity's."""
    by_group = {}
    for folder in CheckpointsRoot(checkpoints).folders():
        by_group.setdefault(group_key(read_config(folder)), []).append(folder)
    series, identity = [], None
    for folders in by_group.values():
        runs = [{r["step"]: r["val/psnr"] for r in read_metrics(folder, having="val/psnr")} for folder in folders]
        steps = sorted(set.intersection(*(set(run) for run in runs)))
        mean = [statistics.mean(run[step] for run in runs) for step in steps]
        label = f"{group_label([f.name for f in folders])} ({len(runs)} seeds, mean)"
        series.append((label, steps, mean, False))
        identity = identity or [r["val/psnr_identity"] for r in read_metrics(folders[0], having="val/psnr_identity")][-1:]
    if identity:
        all_steps = [step for _, steps, _, _ in series for step in steps]
        series.append(("identity (the input as the answer)", [min(all_steps), max(all_steps)], identity * 2, True))
    return svg_chart(series, "held-out PSNR (dB) against training steps", width=640, height=280)


def tile_costs(path):
    measured = json.loads(Path(path).read_text())
    rows = measured["rows"]
    series = [("tiles, layer by layer", [r["tile"] for r in rows], [r["per_pixel"] for r in rows], False),
              ("whole frames", [rows[0]["tile"], rows[-1]["tile"]], [1.0, 1.0], True)]
    title = f"time per output pixel against tile side (halo included), {measured['size']} frames"
    return svg_chart(series, title, width=640, height=260, x_label="tile side (pixels)")


def flicker_by_task(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(row for row in f if not row.startswith("#")))
    labels = [name for name in rows[0] if name != "task"]
    groups = [(row["task"], [float(row[label]) for label in labels]) for row in rows]
    return svg_bars(groups, labels, "flicker ratio per task (1.0: as steady as the footage)", "flicker ratio",
                    width=640, height=260, reference=1.0)


CHARTS = {"curves": psnr_curves, "tiles": tile_costs, "flicker": flicker_by_task}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", choices=sorted(CHARTS))
    parser.add_argument("source", help="a checkpoints folder (curves), bench.memory's JSON (tiles), or a CSV (flicker)")
    parser.add_argument("-o", "--output", required=True, help="the SVG file to write")
    args = parser.parse_args()
    chart = CHARTS[args.chart](args.source).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)  # a file needs it
    Path(args.output).write_text(chart + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
