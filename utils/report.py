"""The experiment report, checkpoints/EXP/index.html: config, curves, metrics, videos and sample grids.

Self-contained and static: curves are inline SVG, media are relative links, there is no script, so
it opens from disk with no server. Rewritten at every epoch's end and by compare and evaluate.
    write_report("checkpoints/unet_sample")
"""
import html
import json
import math
import os
from pathlib import Path

from utils.metrics_log import read_metrics
from utils.fsio import write_text_atomic
from utils.metrics import SCORE_ROWS

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
MAX_GRIDS = 24  # sample grids shown, newest first
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td.k{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0 0 12px 0}figcaption{font-size:13px;color:#555}
img{image-rendering:pixelated;max-width:100%}video{max-width:100%;background:#000}"""


def _ticks(low, high, count=5):
    if high == low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _fmt(value):
    if value == 0:
        return "0"
    magnitude = abs(value)
    return f"{value:.3g}" if 1e-3 <= magnitude < 1e5 else f"{value:.2e}"


def svg_chart(series, title, width=520, height=240):
    """A line chart as inline SVG. `series`: [(label, xs, ys, dashed), ...]; non-finite points are skipped."""
    clean = [(label, [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)], dashed)
             for label, xs, ys, dashed in series]
    clean = [(label, points, dashed) for label, points, dashed in clean if points]
    left, right, top, bottom = 58, 12, 26, 40
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<rect width="{width}" height="{height}" fill="#fff" stroke="#ddd"/>',
             f'<text x="{left}" y="17" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    if not clean:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">no data yet</text></svg>')
        return "".join(parts)
    xs = [x for _, points, _ in clean for x, _ in points]
    ys = [y for _, points, _ in clean for _, y in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    sx = lambda x: left + (x - x0) / ((x1 - x0) or 1) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    for tick in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(tick)}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{_fmt(round(tick))}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 28}" font-size="10" text-anchor="middle">step</text>')
    for i, (label, points, dashed) in enumerate(clean):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{coords}"/>')
        if len(points) == 1:
            parts.append(f'<circle cx="{sx(points[0][0]):.1f}" cy="{sy(points[0][1]):.1f}" r="3" fill="{colour}"/>')
        lx = left + 8 + (i % 3) * ((width - left) // 3)
        ly = top + 6 + (i // 3) * 13
        parts.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>'
                     f'<text x="{lx + 20}" y="{ly + 4}" font-size="10">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def curve(records, key):
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _table(rows, header=None):
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td{" class=k" if i == 0 else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def score_rows(scores):
    """Table rows (metric, generated, identity, target) from a scores dict with _identity and _target keys."""
    rows = []
    for name, label in SCORE_ROWS:
        if name in scores:
            cells = [scores.get(key) for key in (name, f"{name}_identity", f"{name}_target")]
            rows.append((label, *("" if c is None else _fmt(c) for c in cells)))
    return rows


def _video(src, caption):
    return (f'<figure><video src="{html.escape(src)}" controls muted loop preload="auto"></video>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(folder):
    """(Re)write folder/index.html from config.json, metrics.jsonl, samples/, compare.json and evaluation.json."""
    folder = Path(folder)
    config = _read_json(folder / "config.json") or {}
    records = read_metrics(folder)
    losses = [r for r in records if any(k.startswith("loss/") for k in r)]
    validation = [r for r in records if "val/l1" in r]
    events = [r for r in records if "event" in r]
    step = max([r["step"] for r in records], default=0)
    status = events[-1]["event"] if events else "no steps yet"
    sections = [f"<h1>{html.escape(folder.name)}</h1>",
                f"<p>{html.escape(str(config.get('network', '?')))} on {html.escape(str(config.get('data', '?')))}: "
                f"step {step}, last event: {html.escape(status)}</p>"]

    charts = [svg_chart([(k.removeprefix("loss/"), *curve(losses, k), False) for k in ("loss/g_l1", "loss/g_mse")], "reconstruction losses"),
              svg_chart([(k.removeprefix("loss/"), *curve(losses, k), False) for k in ("loss/g_adv", "loss/d_real", "loss/d_fake")], "adversarial losses"),
              svg_chart([("val L1", *curve(validation, "val/l1"), False), ("identity", *curve(validation, "val/l1_identity"), True)], "validation L1"),
              svg_chart([("val PSNR", *curve(validation, "val/psnr"), False), ("identity", *curve(validation, "val/psnr_identity"), True)], "validation PSNR (dB)")]
    sections.append("<h2>Curves</h2><div class=charts>" + "".join(charts) + "</div>")

    tables = []
    if validation:
        last = {k.removeprefix("val/"): v for k, v in validation[-1].items() if k.startswith("val/")}
        tables.append(f"<h3>validation at step {validation[-1]['step']}</h3>" + _table(score_rows(last), ("", "generated", "identity", "target")))
    evaluation = _read_json(folder / "evaluation.json")
    if evaluation:
        tables.append(f"<h3>evaluate on {html.escape(str(evaluation.get('data')))}</h3>" +
                      _table(score_rows(evaluation["scores"]), ("", "generated", "identity", "target")))
    comparison = _read_json(folder / "compare.json")
    if comparison and comparison.get("scores"):
        tables.append(f"<h3>compare on {html.escape(str(comparison.get('video')))}</h3>" +
                      _table(score_rows(comparison["scores"]), ("", "generated", "identity", "target")))
    sections.append("<h2>Metrics</h2>" + ("".join(tables) or "<p>no validation yet</p>"))

    videos = []
    if comparison and comparison.get("output") and os.path.exists(comparison["output"]):
        videos.append(_video(os.path.relpath(comparison["output"], folder), f"compare: {comparison.get('video')} (input | generated | target)"))
    epoch_videos = sorted((folder / "samples").glob("epoch_*.mp4"))
    if epoch_videos:
        videos.append(_video(f"samples/{epoch_videos[-1].name}", f"validation frames after {epoch_videos[-1].stem.replace('_', ' ')}"))
    if videos:
        sections.append("<h2>Latest videos</h2>" + "".join(videos))

    grids = sorted((folder / "samples").glob("epoch_*.png"), reverse=True)[:MAX_GRIDS]
    if grids:
        sections.append("<h2>Samples (rows: input, generated, target)</h2>" + "".join(
            f'<figure><img src="samples/{g.name}" alt="{g.stem}"><figcaption>{g.stem.replace("_", " ")}</figcaption></figure>' for g in grids))
    sections.append("<h2>Config</h2>" + _table(sorted((k, json.dumps(v)) for k, v in config.items())))
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(folder.name)} - vgan</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
    write_text_atomic(folder / "index.html", page)
    return folder / "index.html"
