"""The experiment report, checkpoints/EXP/index.html: config, curves, metrics, videos and sample grids.

Self-contained and static: curves are inline SVG, media are relative links, there is no script, so
it opens from disk with no server. Rewritten at every epoch's end and by compare and evaluate.
    write_report("checkpoints/unet_sample")
"""
import html
import json
import os
from pathlib import Path

from experiments.html import curve, page, score_cells, svg_chart, table, video
from runfolder.config import read_config
from runfolder.events import events
from runfolder.layout import RunFolder
from runfolder.metrics import read_metrics
from utils.fsio import read_json, write_json_atomic, write_text_atomic
from utils.images import PROFILE_ROWS

MAX_GRIDS = 24  # sample grids shown, newest first


def record_result(result, kind, sidecar=None):
    """Keep a compare or evaluate result: as JSON at `sidecar` when given, and, for a checkpoint in an
    experiment folder, as the folder's latest result of its kind (`kind`: compare or evaluation),
    with the experiment's page rewritten."""
    if sidecar is not None:
        write_json_atomic(sidecar, result)
    folder = RunFolder(Path(result["checkpoint"]).parent)
    if folder.config.exists():
        output = result.get("output")
        write_json_atomic(folder.result(kind), {**result, **({"output": str(Path(output).resolve())} if output else {})})
        write_report(folder)


def write_report(folder):
    """(Re)write folder/index.html from config.json, metrics.jsonl, samples/, compare.json and evaluation.json."""
    folder = RunFolder(folder)
    config = read_config(folder)
    records = read_metrics(folder)
    losses = [r for r in records if any(k.startswith("loss/") for k in r)]
    validation = [r for r in records if any(key.startswith("val/") for key in r)]
    logged = events(folder)
    step = max([r["step"] for r in records], default=0)
    status = logged[-1]["event"] if logged else "no steps yet"
    sections = [f"<h1>{html.escape(folder.name)}</h1>",
                f"<p>{html.escape(str(config.get('network', '?')))} on {html.escape(str(config.get('data', '?')))}: "
                f"step {step}, last event: {html.escape(status)}</p>"]

    unpaired = any("val/cycle_psnr" in r for r in validation)
    charts = [svg_chart([(k.removeprefix("loss/"), *curve(losses, k), False) for k in ("loss/g_l1", "loss/g_mse", "loss/g_temporal",
                         "loss/g_cycle", "loss/g_identity", "loss/g_recurrent", "loss/g_recycle")], "reconstruction and temporal losses"),
              svg_chart([(k.removeprefix("loss/"), *curve(losses, k), False) for k in ("loss/g_adv", "loss/d_real", "loss/d_fake")], "adversarial losses")]
    if unpaired:  # no target: how well each way comes back, and how steady a translation is under the input's motion
        charts += [svg_chart([("A to B to A", *curve(validation, "val/cycle_psnr_ab"), False),
                              ("B to A to B", *curve(validation, "val/cycle_psnr_ba"), False)], "validation cycle PSNR (dB)"),
                   svg_chart([("A to B", *curve(validation, "val/flicker_ab"), False), ("B to A", *curve(validation, "val/flicker_ba"), False)],
                             "validation flicker ratio (1 = as steady as the input)")]
    else:
        charts += [svg_chart([("val L1", *curve(validation, "val/l1"), False), ("identity", *curve(validation, "val/l1_identity"), True)], "validation L1"),
                   svg_chart([("val PSNR", *curve(validation, "val/psnr"), False), ("identity", *curve(validation, "val/psnr_identity"), True)], "validation PSNR (dB)"),
                   svg_chart([("generated", *curve(validation, "val/flicker"), False), ("identity", *curve(validation, "val/flicker_identity"), True)],
                             "validation flicker ratio (1 = as steady as the target)")]
        if any("val/jod" in r for r in validation):
            charts.append(svg_chart([("val JOD", *curve(validation, "val/jod"), False), ("identity", *curve(validation, "val/jod_identity"), True)],
                                    "validation JOD (ColorVideoVDP; 10 = no visible difference)"))
    sections.append("<h2>Curves</h2><div class=charts>" + "".join(charts) + "</div>")

    tables = []
    if validation:
        last = {k.removeprefix("val/"): v for k, v in validation[-1].items() if k.startswith("val/")}
        tables.append(f"<h3>validation at step {validation[-1]['step']}</h3>" + table(score_cells(last), ("", "generated", "identity", "target")))
    evaluation = read_json(folder.result("evaluation"))
    if evaluation:
        tables.append(f"<h3>evaluate on {html.escape(str(evaluation.get('data')))}</h3>" +
                      table(score_cells(evaluation["scores"]), ("", "generated", "identity", "target")))
    comparison = read_json(folder.result("compare"))
    if comparison and comparison.get("scores"):
        tables.append(f"<h3>compare on {html.escape(str(comparison.get('video')))}</h3>" +
                      table(score_cells(comparison["scores"]), ("", "generated", "identity", "target")))
    sections.append("<h2>Metrics</h2>" + ("".join(tables) or "<p>no validation yet</p>"))

    sections += temporal_views(folder, comparison)

    videos = []
    if comparison and comparison.get("output") and os.path.exists(comparison["output"]):
        videos.append(video(relative(comparison["output"], folder), f"compare: {comparison.get('video')} (input | generated | target)"))
    epoch_videos = folder.sample_videos()
    if epoch_videos:
        videos.append(video(relative(epoch_videos[-1], folder), f"validation frames after {epoch_videos[-1].stem.replace('_', ' ')}"))
    if videos:
        sections.append("<h2>Latest videos</h2>" + "".join(videos))

    grids = folder.sample_grids()[:MAX_GRIDS]
    if grids:
        sections.append("<h2>Samples (rows: input, generated, target)</h2>" + "".join(
            f'<figure><img src="{relative(g, folder)}" alt="{g.stem}"><figcaption>{g.stem.replace("_", " ")}</figcaption></figure>' for g in grids))
    sections.append("<h2>Config</h2>" + table(sorted((k, json.dumps(v)) for k, v in config.items())))
    write_text_atomic(folder.page, page(folder.name, sections))
    return folder.page


def temporal_views(folder, comparison):
    """The "Flicker" section: compare's temporal profile and the warping error of each frame pair
    (generated and target, window switches marked), and the latest validation's profile."""
    parts = []
    if comparison and comparison.get("profile") and os.path.exists(comparison["profile"]):
        parts.append(f'<figure><img class=profile src="{relative(comparison["profile"], folder)}" alt="temporal profile">'
                     f"<figcaption>compare: the middle row of every frame, time running down (input | generated | target); "
                     f"flicker shows as horizontal streaks; red ticks mark window switches</figcaption></figure>")
    pairs = ((comparison or {}).get("pairs") or [])[:PROFILE_ROWS]  # the frames the profile shows
    if pairs:
        frames = [p[0] for p in pairs]
        parts.append(svg_chart([("generated", frames, [p[1] for p in pairs], False), ("target", frames, [p[2] for p in pairs], True)],
                               "compare: masked warping error per frame pair", width=1000, x_label="frame",
                               marks=[p[0] for p in pairs if p[3]], mark_label="window switch"))
    jod = ((comparison or {}).get("curves") or {}).get("jod", [])[:PROFILE_ROWS]
    if jod:  # beside the warping error: what a viewer would see of each frame, the same frames
        frames = [row[0] for row in jod]
        switches = [p[0] for p in pairs if p[3]]
        parts.append(svg_chart([("generated", frames, [row[1] for row in jod], False), ("identity (the input)", frames, [row[2] for row in jod], True)],
                               "compare: JOD per frame (ColorVideoVDP; 10 = no visible difference)", width=1000, x_label="frame",
                               marks=switches, mark_label="window switch"))
    profiles = folder.sample_profiles()
    if profiles:
        parts.append(f'<figure><img class=profile src="{relative(profiles[-1], folder)}" alt="validation temporal profile">'
                     f"<figcaption>validation after {profiles[-1].stem.replace('_', ' ')}: the windows one after another "
                     f"(input | generated | target), each switch between windows marked</figcaption></figure>")
    return ["<h2>Flicker</h2>" + "".join(parts)] if parts else []


def relative(path, folder):
    """A link from the folder's page to `path`."""
    return Path(os.path.relpath(path, folder)).as_posix()
