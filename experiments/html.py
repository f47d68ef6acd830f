"""HTML building blocks for the static report pages: inline SVG line charts, tables, a page shell.
No scripts and no network: the pages open from disk.
    svg_chart([("val L1", steps, values, False)], "validation L1")
"""
import html
import math

from metrics.scores import score_rows

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td.k{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0 0 12px 0}figcaption{font-size:13px;color:#555}
img{image-rendering:pixelated;max-width:100%}video{max-width:100%;background:#000}"""


def _ticks(low, high, count=5, integer=False):
    """Round ticks inside [low, high]: about `count` of them, a step of 1, 2, 2.5 or 5 times a power
    of ten (at least 1 with `integer`), so that neighbouring labels never read the same."""
    if high <= low:
        return [low]
    raw = (high - low) / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    step = max(step, 1) if integer else step
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)] if first <= high + 1e-9 * step else []


def tick_label(value, ticks):
    """`value` with as many decimals as the ticks' step needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 0
    if not step or not 1e-4 <= step < 1e5:
        return fmt(value)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 3) == 2.5 else 0)
    return f"{value:.{decimals}f}"


def fmt(value):
    if value == 0:
        return "0"
    magnitude = abs(value)
    return f"{value:.3g}" if 1e-3 <= magnitude < 1e5 else f"{value:.2e}"


def svg_chart(series, title, width=520, height=240, x_label="step", marks=(), mark_label=None):
    """A line chart as inline SVG, its legend below the plot, one line per series.
    `series`: [(label, xs, ys, dashed), ...]; non-finite points are skipped. `marks`: x positions
    drawn as faint vertical lines (named `mark_label` in the legend)."""
    clean = [(label, [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)], dashed)
             for label, xs, ys, dashed in series]
    clean = [(label, points, dashed) for label, points, dashed in clean if points]
    left, right, top, bottom = 58, 12, 26, 40
    legend = 14 * (len(clean) + bool(marks and mark_label)) + 4
    total = height + legend
    parts = [svg_open(width, total, title, left)]
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
    parts.append(y_grid(_ticks(y0, y1), sy, left, width - right))
    for tick in _ticks(x0, x1, integer=True):
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{fmt(round(tick))}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 28}" font-size="10" text-anchor="middle">{html.escape(x_label)}</text>')
    for x in marks:
        if x0 <= x <= x1:
            parts.append(f'<line class="mark" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{height - bottom}" stroke="#e8a0a0"/>')
    if marks and mark_label:
        ly = height + 14 * len(clean) + 6
        parts.append(f'<line x1="{left}" x2="{left + 16}" y1="{ly}" y2="{ly}" stroke="#e8a0a0" stroke-width="2"/>'
                     f'<text x="{left + 20}" y="{ly + 4}" font-size="10">{html.escape(mark_label)}</text>')
    for i, (label, points, dashed) in enumerate(clean):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{coords}"/>')
        if len(points) == 1:
            parts.append(f'<circle cx="{sx(points[0][0]):.1f}" cy="{sy(points[0][1]):.1f}" r="3" fill="{colour}"/>')
        ly = height + 14 * i + 6
        parts.append(legend_entry(f'<line x1="{left}" x2="{left + 16}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>',
                                  label, left, ly))
    parts.append("</svg>")
    return "".join(parts)


def svg_open(width, height, title, left):
    """An SVG's opening tag, white background and title (inline in a page; bench/plots.py adds the
    namespace a file needs, which a page must not carry: it would be the page's one address)."""
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{html.escape(title)}"><rect width="{width}" height="{height}" fill="#fff" stroke="#ddd"/>'
            f'<text x="{left}" y="17" font-size="13" font-weight="bold">{html.escape(title)}</text>')


def y_grid(ticks, sy, left, right):
    """Horizontal grid lines at `ticks`, labelled on the left; `sy` maps a value to its y."""
    return "".join(f'<line x1="{left}" x2="{right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick_label(tick, ticks)}</text>'
                   for tick in ticks)


def legend_entry(marker, label, left, y):
    """One line of a chart's legend below the plot: its marker (a line or a dot), then its label."""
    return marker + f'<text x="{left + 20}" y="{y + 4}" font-size="10">{html.escape(label)}</text>'


def y_axis_label(text, middle):
    """The y axis's label, written upwards along the left edge, centred on `middle`."""
    return (f'<text x="12" y="{middle:.1f}" font-size="10" transform="rotate(-90 12 {middle:.1f})" '
            f'text-anchor="middle">{html.escape(text)}</text>')


def svg_bars(groups, labels, title, y_label, width=520, height=240, reference=None):
    """Grouped bars as SVG: `groups` [(name, [value per label]), ...], one colour per label, its
    legend below; `reference`, a y drawn as a dashed line across (1.0 for a ratio, say)."""
    left, right, top, bottom = 58, 12, 26, 40
    legend = 14 * len(labels) + 4
    values = [v for _, vs in groups for v in vs] + ([reference] if reference is not None else [])
    y1 = max(values) * 1.08 or 1
    sy = lambda y: height - bottom - y / y1 * (height - top - bottom)  # noqa: E731
    slot = (width - left - right) / len(groups)
    bar = slot * 0.8 / len(labels)
    parts = [svg_open(width, height + legend, title, left), y_grid(_ticks(0, y1), sy, left, width - right)]
    parts.append(y_axis_label(y_label, (top + height - bottom) / 2))
    for g, (name, vs) in enumerate(groups):
        x0 = left + g * slot + slot * 0.1
        for i, value in enumerate(vs):
            parts.append(f'<rect x="{x0 + i * bar:.1f}" y="{sy(value):.1f}" width="{bar - 1:.1f}" height="{sy(0) - sy(value):.1f}" '
                         f'fill="{COLOURS[i % len(COLOURS)]}"><title>{html.escape(name)}, {html.escape(labels[i])}: {fmt(value)}</title></rect>')
        parts.append(f'<text x="{left + (g + 0.5) * slot:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{html.escape(name)}</text>')
    if reference is not None:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(reference):.1f}" y2="{sy(reference):.1f}" stroke="#555" stroke-dasharray="5,4"/>')
    for i, label in enumerate(labels):
        ly = height + 14 * i + 6
        parts.append(f'<rect x="{left}" y="{ly - 5}" width="16" height="8" fill="{COLOURS[i % len(COLOURS)]}"/>'
                     f'<text x="{left + 20}" y="{ly + 4}" font-size="10">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_scatter(points, title, x_label, y_label, width=520, height=260):
    """Points with error bars as SVG, one colour per point, its legend below: `points`
    [(label, x, y, x_err, y_err), ...], errors of 0 drawing no bar. For the perception-distortion
    view: a run or seed group's PSNR against its JOD, both better up and to the right."""
    points = [p for p in points if all(isinstance(v, (int, float)) and math.isfinite(v) for v in p[1:])]
    left, right, top, bottom = 58, 12, 26, 40
    parts = [svg_open(width, height + 14 * len(points) + 4, title, left)]
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">no run has both scores yet</text></svg>')
        return "".join(parts)
    x0, x1 = min(x - dx for _, x, _, dx, _ in points), max(x + dx for _, x, _, dx, _ in points)
    y0, y1 = min(y - dy for _, _, y, _, dy in points), max(y + dy for _, _, y, _, dy in points)
    pad_x, pad_y = (x1 - x0) * 0.08 or 0.5, (y1 - y0) * 0.08 or 0.5
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    parts.append(y_grid(_ticks(y0, y1), sy, left, width - right))
    x_ticks = _ticks(x0, x1)
    for tick in x_ticks:
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{tick_label(tick, x_ticks)}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 28}" font-size="10" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(y_axis_label(y_label, (top + height - bottom) / 2))
    for i, (label, x, y, dx, dy) in enumerate(points):
        colour = COLOURS[i % len(COLOURS)]
        if dx:
            parts.append(f'<line x1="{sx(x - dx):.1f}" x2="{sx(x + dx):.1f}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="{colour}"/>')
        if dy:
            parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(y - dy):.1f}" y2="{sy(y + dy):.1f}" stroke="{colour}"/>')
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{colour}"/>')
        ly = height + 14 * i + 6
        parts.append(legend_entry(f'<circle cx="{left + 8}" cy="{ly}" r="4" fill="{colour}"/>', label, left, ly))
    parts.append("</svg>")
    return "".join(parts)


def svg_dots(columns, clips, title, y_label, width=520, height=260, reference=None):
    """Every seed's score on every clip as dots, one column per group, one colour per clip (its legend
    below), with the group's interval as a bar and its mean as a tick beside the dots. `columns`
    [(name, [[score per clip] per seed], (low, high), mean), ...]; `reference`: a y drawn dashed
    across (0 for differences)."""
    left, right, top, bottom = 58, 12, 26, 40
    values = [v for _, seeds, interval, _ in columns for v in [*(x for seed in seeds for x in seed), *interval]]
    values += [] if reference is None else [reference]
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    parts = [svg_open(width, height + 14 * len(clips) + 4, title, left)]
    if not values:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">no scores</text></svg>')
        return "".join(parts)
    y0, y1 = min(values), max(values)
    pad = (y1 - y0) * 0.08 or 0.5
    y0, y1 = y0 - pad, y1 + pad
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    parts += [y_grid(_ticks(y0, y1), sy, left, width - right), y_axis_label(y_label, (top + height - bottom) / 2)]
    slot = (width - left - right) / max(1, len(columns))
    if reference is not None:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(reference):.1f}" y2="{sy(reference):.1f}" stroke="#555" '
                     f'stroke-dasharray="5,4"/>')
    for g, (name, seeds, (low, high), mean) in enumerate(columns):
        middle = left + (g + 0.5) * slot
        for c in range(len(clips)):
            for s, seed in enumerate(seeds):
                x = middle - slot * 0.3 + (c + 0.5) * slot * 0.4 / len(clips) + (s - (len(seeds) - 1) / 2) * 2
                parts.append(f'<circle cx="{x:.1f}" cy="{sy(seed[c]):.1f}" r="2.6" fill="{COLOURS[c % len(COLOURS)]}" '
                             f'fill-opacity="0.8"><title>{html.escape(name)}, {html.escape(clips[c])}, seed {s + 1}: '
                             f'{fmt(seed[c])}</title></circle>')
        bar = middle + slot * 0.22
        parts.append(f'<line x1="{bar:.1f}" x2="{bar:.1f}" y1="{sy(low):.1f}" y2="{sy(high):.1f}" stroke="#222" stroke-width="2"/>'
                     f'<line x1="{bar - 6:.1f}" x2="{bar + 6:.1f}" y1="{sy(mean):.1f}" y2="{sy(mean):.1f}" stroke="#222" stroke-width="2">'
                     f'<title>{html.escape(name)}: mean {fmt(mean)}, interval {fmt(low)} to {fmt(high)}</title></line>')
        parts.append(f'<text x="{middle:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">{html.escape(name)}</text>')
    for c, clip in enumerate(clips):
        ly = height + 14 * c + 6
        parts.append(legend_entry(f'<circle cx="{left + 8}" cy="{ly}" r="4" fill="{COLOURS[c % len(COLOURS)]}"/>', clip, left, ly))
    parts.append("</svg>")
    return "".join(parts)


def curve(records, key):
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


class Raw(str):
    """Table cell content that is HTML already (a link, say) and must not be escaped."""


def cell(value):
    return value if isinstance(value, Raw) else html.escape(str(value))


def table(rows, header=None, left=(0,)):
    """An HTML table; the columns numbered in `left` (text) are left-aligned, the rest (numbers) right."""
    left = {i % len(header or rows[0] or [0]) for i in left} if (header or rows) else set()
    head = "<tr>" + "".join(f"<th>{cell(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td{" class=k" if i in left else ""}>{cell(c)}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def score_cells(scores):
    """The score rows (metrics.scores.score_rows) as table cells."""
    return [(label, *("" if c is None else fmt(c) for c in cells)) for label, *cells in score_rows(scores)]


def video(src, caption):
    return (f'<figure><video src="{html.escape(src)}" controls muted loop preload="auto"></video>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title, sections):
    """A whole HTML page around `sections` (HTML strings)."""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} - vgan</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
