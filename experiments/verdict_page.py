"""What `verdict` says and shows: the seed groups' scores on the test clips judged by
experiments/verdict.py, as a record (verdict.json), as text tables, and as CHECKPOINTS/verdict.html,
each structure side by side (what inspect-network says of it, its search curve, every seed on every
clip with the intervals, the differences, perception against distortion, one frame crop and one x-t
profile of one test clip, and the verdict in one sentence).

    record = verdict_record(judge_scores(groups, table, clips, metrics, decide, 0.05), ...); print_verdict(record)
"""
import html
import json
import os

from experiments.html import page, svg_chart, svg_dots, svg_scatter, table
from experiments.runs import group_label, short_names
from experiments.verdict import INTERVAL, judge, judge_many
from metrics import better_is_higher, judged, judged_label, perception_distortion
from utils.fsio import write_text_atomic

STATISTIC = "mean"  # of every seed on every clip; the IQM needs more seeds than a verdict usually has


def grouped(runs):
    """{group label: [run names]} of `runs` (summaries by name), each group its runs with the same
    config apart from the seed, in name order, labelled by what tells the groups apart."""
    by_key = {}
    for name in sorted(runs):
        by_key.setdefault(runs[name]["group"], []).append(name)
    labels = {group_label(names): names for names in by_key.values()}
    short = short_names(list(labels))
    return {short[label]: names for label, names in labels.items()}


def judge_scores(groups, table, clips, metrics, decide, alpha):
    """{metric: Judgement} of every metric every run has on every clip: the `decide` ones judged
    together (Holm across all of their pairs), the others each described alone (no decision)."""
    def scores(metric):  # what the metric is judged on: its value, or a ratio's distance from 1
        values = {label: [[judged(metric, table[run][clip.name].get(metric)) for clip in clips] for run in runs]
                  for label, runs in groups.items()}
        complete = all(isinstance(v, (int, float)) for seeds in values.values() for seed in seeds for v in seed)
        return values if complete else None

    available = {metric: scores(metric) for metric in metrics}
    available = {metric: values for metric, values in available.items() if values is not None}
    decided = judge_many({m: (available[m], better_is_higher(m)) for m in decide if m in available}, alpha)
    described = {m: judge(values, better_is_higher(m), alpha) for m, values in available.items() if m not in decided}
    identity = {m: _mean([judged(m, table[run][clip.name].get(f"{m}_identity")) for runs in groups.values() for run in runs
                          for clip in clips]) for m in available}
    return {"decided": decided, "described": described, "identity": identity}


def _mean(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def verdict_record(verdict, groups, runs, clips, data, settings, effect, left_out, facts=None, search=None):
    """The whole verdict as plain data (verdict.json, --json, the page)."""
    metrics = {}
    for decided, results in ((True, verdict["decided"]), (False, verdict["described"])):
        for metric, result in results.items():
            entry = {"label": judged_label(metric), "better": "higher" if better_is_higher(metric) else "lower", "decided": decided,
                     "identity": verdict["identity"].get(metric), "seed_std": result.seed_std,
                     "groups": {label: {"mean": result.means[label], "interval": list(result.intervals[label]),
                                        "seeds": result.scores[label].tolist(), "per_clip": result.per_clip()[label],
                                        **({"word": result.words[label]} if decided else {})} for label in groups},
                     "pairs": [{"first": p.first, "second": p.second, "difference": p.difference, "interval": list(p.interval),
                                "p_better": p.p_better, "p": p.p, **({"significant": p.significant} if decided else {})}
                               for p in result.pairs]}
            if decided:
                entry.update(comparisons=result.comparisons, detectable=result.detectable(),
                             seeds_per_group=result.seeds_per_group)
                if effect:
                    entry["effect"] = {"difference": effect, "seeds": result.seeds_for(effect)}
            metrics[metric] = entry
    record = {
        "data": str(data), "clips": [{"name": clip.name, "frames": len(clip.inputs)} for clip in clips],
        "alpha": next((r.alpha for r in verdict["decided"].values()), None), "statistic": STATISTIC,
        "interval": f"{INTERVAL:.0%} bootstrap over seeds (within each group) and clips (shared by every group)",
        "test": "Welch's t-test on each seed's mean over the clips, every pair of groups, Holm's procedure across every decided score",
        "computing": {"weights": settings.weights, "amp": settings.amp, "device": str(settings.device)},
        "groups": {label: {"runs": names, "network": runs[names[0]]["network"], "parameters": runs[names[0]]["parameters"],
                           "clips_per_s": _mean([runs[n]["clips_per_s"] for n in names]), "batch": runs[names[0]]["batch"],
                           "steps": runs[names[0]]["steps"], "flags": runs[names[0]]["flags"],
                           **({"facts": facts[label]} if facts and label in facts else {}),
                           **({"search": search[label]} if search and label in search else {})}
                   for label, names in groups.items()},
        "metrics": metrics, "left_out": left_out,
    }
    record["sentence"] = sentence(record)
    return record


def sentence(record):
    """The verdict in one sentence, from the decided scores' words."""
    parts = []
    for metric, entry in record["metrics"].items():
        if not entry["decided"]:
            continue
        words = {label: g["word"] for label, g in entry["groups"].items()}
        best = next(label for label, word in words.items() if word == "best")
        worse = [label for label, word in words.items() if word.startswith("worse")]
        short = entry["label"].split(" (")[0]
        if len(words) == 1:
            parts.append(f"{short}: one group only, nothing to compare")
        elif worse:
            parts.append(f"{short}: {best} is best, and {', '.join(worse)} {'is' if len(worse) == 1 else 'are'} worse"
                         + ("" if len(worse) + 1 == len(words) else "; the rest do not differ from it"))
        else:
            parts.append(f"{short}: no group differs ({best} leads by chance as far as {entry['seeds_per_group']} seeds "
                         f"and {len(record['clips'])} clips can tell)")
    clips = len(record["clips"])
    decided = [m for m, e in record["metrics"].items() if e["decided"]]
    family = record["metrics"][decided[0]]["comparisons"] if decided else 0
    return (f"On {clips} test clip{'s' if clips != 1 else ''} no run trained on, with the chance of any false "
            f"\"worse\" held at {record['alpha']:.0%} over {family} comparison{'s' if family != 1 else ''}: " + "; ".join(parts) + ".")


def _num(value, digits=4):
    """`digits` significant digits: PSNR as 18.54, a warping error as 0.000483."""
    return "-" if value is None else f"{value:.{digits}g}"


def text_tables(record):
    """The verdict as (title, header, rows) tables, in the order print_verdict shows them."""
    tables = []
    for metric, entry in record["metrics"].items():
        rows = [[label, str(len(g["seeds"])), _num(g["mean"]), f"[{_num(g['interval'][0])}, {_num(g['interval'][1])}]",
                 g.get("word", "")] for label, g in entry["groups"].items()]
        title = (f"{entry['label']} ({entry['better']} is better; identity {_num(entry['identity'])})"
                 + ("" if entry["decided"] else ": described, not decided"))
        tables.append((title, ["group", "seeds", STATISTIC, "interval", "verdict" if entry["decided"] else ""], rows))
        if entry["decided"] and len(entry["groups"]) > 1:
            pairs = [[p["first"], p["second"], _num(p["difference"]), f"[{_num(p['interval'][0])}, {_num(p['interval'][1])}]",
                      f"{p['p_better']:.2f}", "-" if p["p"] is None else f"{p['p']:.3g}",
                      "differ" if p["significant"] else "no difference"] for p in entry["pairs"]]
            tables.append((f"{entry['label']}: pairs (difference = A - B; Holm over {entry['comparisons']} comparisons, "
                           f"alpha {record['alpha']:g})", ["A", "B", "difference", "interval", "P(A > B)", "p", "decision"], pairs))
            clips = [clip["name"] for clip in record["clips"]]
            tables.append((f"{entry['label']}: per clip ({STATISTIC} over seeds)", ["group", *clips],
                           [[label, *(_num(v) for v in g["per_clip"])] for label, g in entry["groups"].items()]))
    return tables


def power_lines(record):
    """What these seeds and clips can tell, per decided score, and the seeds --effect needs."""
    lines = []
    for entry in record["metrics"].values():
        if not entry["decided"]:
            continue
        if entry["detectable"] is None:
            lines.append(f"{entry['label']}: give every group 2 or more seeds to know what they can detect")
            continue
        lines.append(f"{entry['label']}: {entry['seeds_per_group']} seeds a group detect a difference of "
                     f"{entry['detectable']:.3g} or more with 80% power (seed deviation {entry['seed_std']:.3g})")
        if "effect" in entry:
            seeds = entry["effect"]["seeds"]
            lines.append(f"  a difference of {entry['effect']['difference']:g} needs "
                         + (f"{seeds} seeds a group" if seeds else "more than 1000 seeds a group"))
    return lines


def print_verdict(record):
    from experiments.runs import text_table

    clips = ", ".join(f"{c['name']} ({c['frames']} frames)" for c in record["clips"])
    runs = sum(len(g["runs"]) for g in record["groups"].values())
    print(f"verdict on the test footage of {record['data']}, which no run trained or validated on: {clips}")
    print(f"{runs} runs in {len(record['groups'])} groups; {STATISTIC} over seeds and clips, {record['interval']}; "
          f"{record['test']}")
    if record["left_out"]:
        print(f"left out (not finished): {', '.join(record['left_out'])}")
    for title, header, rows in text_tables(record):
        print(f"\n{title}:")
        print(text_table(header, rows))
    lines = power_lines(record)
    if lines:
        print("\nwhat these seeds and clips can tell:")
        print("\n".join(lines))
    print(f"\n{record['sentence']}")


def write_verdict_page(folder, record, settings):
    """(Re)write CHECKPOINTS/verdict.html from `record`; returns its path."""
    label = {m: e["label"] for m, e in record["metrics"].items()}
    sections = [f"<h1>Verdict on the test footage of {html.escape(record['data'])}</h1>",
                f"<p><b>{html.escape(record['sentence'])}</b></p>",
                f"<p>Test clips, which no run trained or validated on: "
                f"{html.escape(', '.join(c['name'] + ' (' + str(c['frames']) + ' frames)' for c in record['clips']))}. "
                f"Scores are the {STATISTIC} over seeds and clips; intervals are {html.escape(record['interval'])}. "
                f"Decisions: {html.escape(record['test'])}, alpha {record['alpha']:g}. Computed with the "
                f"{html.escape(settings.weights)} weights, amp {html.escape(settings.amp)}.</p>"]
    sections.append("<h2>The structures</h2>" + table(_structure_rows(record), [
        "group", "network", "seeds", "M parameters", "GFLOP per clip (forward)", "receptive field (frames)",
        "receptive field (pixels)", "training step (s, measured)"], left=(0, 1)))
    searched = [(name, g["search"]) for name, g in record["groups"].items() if g.get("search")]
    if searched:
        series = []
        for name, c in searched:
            series += [(name, c["k"], c["expected"], False), (f"{name}: 5%", c["k"], c["low"], True), (f"{name}: 95%", c["k"], c["high"], True)]
        sections.append("<h2>Each structure at its best</h2><p>The search's expected best validation score of k trials.</p>"
                        + svg_chart(series, "expected best of k trials (validation)", x_label="trials (k)"))
    clips = [c["name"] for c in record["clips"]]
    charts = []
    for metric, entry in record["metrics"].items():
        columns = [(name, g["seeds"], g["interval"], g["mean"]) for name, g in entry["groups"].items()]
        charts.append(svg_dots(columns, clips, f"{label[metric]}, per seed and clip", label[metric]))
    sections.append("<h2>Every seed on every test clip</h2><p>Dots: one seed on one clip (colour: the clip). Bar: the "
                    "group's interval; tick: its mean.</p><div class=charts>" + "".join(charts) + "</div>")
    differences, difference_tables = [], []
    for metric, entry in record["metrics"].items():
        if entry["decided"] and entry["pairs"]:
            groups = entry["groups"]
            # One dot per clip: the difference of the two groups' means over their seeds on that clip.
            differences.append(svg_dots([(f"{p['first']} - {p['second']}",
                                          [[a - b for a, b in zip(groups[p["first"]]["per_clip"], groups[p["second"]]["per_clip"])]],
                                          p["interval"], p["difference"]) for p in entry["pairs"]], clips,
                                        f"{label[metric]}: differences", label[metric], reference=0.0))
            rows = [[p["first"], p["second"], _num(p["difference"]), f"[{_num(p['interval'][0])}, {_num(p['interval'][1])}]",
                     f"{p['p_better']:.2f}", "-" if p["p"] is None else f"{p['p']:.3g}", "differ" if p["significant"] else "no difference"]
                    for p in entry["pairs"]]
            difference_tables.append(f"<h3>{html.escape(label[metric])}</h3>"
                                     + table(rows, ["A", "B", "A - B", "interval", "P(A > B)", "p", "decision (Holm)"], left=(0, 1, 6)))
    if differences:
        sections.append("<h2>Differences</h2><p>Dots: the difference on each clip (means over seeds). Bar: the interval of "
                        "the difference over seeds and clips; tick: the difference.</p><div class=charts>" + "".join(differences)
                        + "</div>" + "".join(difference_tables))
    distortion, perception = perception_distortion()
    if {distortion, perception} <= set(record["metrics"]):
        x, y = record["metrics"][distortion]["groups"], record["metrics"][perception]["groups"]
        points = [(name, x[name]["mean"], y[name]["mean"], (x[name]["interval"][1] - x[name]["interval"][0]) / 2,
                   (y[name]["interval"][1] - y[name]["interval"][0]) / 2) for name in x]
        sections.append("<h2>Perception and distortion, on the test clips</h2><p>Up and to the right is better on both; bars: "
                        "half the intervals.</p>" + svg_scatter(points, f"test {label[distortion]} against {label[perception]}",
                                                                label[distortion], label[perception]))
    figures = []
    for name, g in record["groups"].items():
        images = folder.images(g["runs"][0])
        for kind, caption in (("middle.png", "the middle frame"), ("profile.png", "x-t profile: input | generated | target")):
            if (images / kind).exists():
                link = os.path.relpath(images / kind, folder.page.parent)
                figures.append(f'<figure><img src="{html.escape(link)}" alt="{html.escape(name)}" style="min-width:160px">'
                               f"<figcaption>{html.escape(name)} ({html.escape(g['runs'][0])}): {caption} of "
                               f"{html.escape(clips[0])}</figcaption></figure>")
    if figures:
        sections.append(f"<h2>One test clip, every structure</h2><div class=charts>{''.join(figures)}</div>")
    sections.append("<h2>The record</h2><p>verdict/verdict.json holds every number on this page; verdict/scores.json every "
                    "score of every run on every clip.</p>")
    write_text_atomic(folder.page, page("verdict", sections))
    return folder.page


def _structure_rows(record):
    rows = []
    for name, g in record["groups"].items():
        facts = g.get("facts") or {}
        step = g["batch"] / g["clips_per_s"] if g.get("clips_per_s") and g.get("batch") else None
        rows.append([name, g["network"], str(len(g["runs"])), _num(facts.get("parameters", g["parameters"] and g["parameters"] / 1e6)),
                     _num(facts.get("gflop")), "whole clip" if facts and facts.get("frames") is None else _num(facts.get("frames")),
                     "whole frame" if facts and facts.get("pixels") is None else _num(facts.get("pixels")), _num(step)])
    return rows


def search_curves(summary_path, groups):
    """{group label: its structure's best-of-k curve} from the last search's summary, for groups whose network was searched."""
    if not summary_path.exists():
        return {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    curves = {structure: entry["curve"] for structure, entry in summary.get("structures", {}).items() if entry.get("curve")}
    return {label: curves[network] for label, network in groups.items() if network in curves}

