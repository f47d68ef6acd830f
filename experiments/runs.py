"""What every experiment under checkpoints/ did, read from config.json, metrics.jsonl and the
checkpoint's JSON header only (no weights, no torch), so hundreds of runs take about a second;
and runs that differ only by seed grouped, with means, deviations and Welch's t-test.
    runs = [summarize(folder, default_flags()) for folder in CheckpointsRoot("checkpoints").folders()]
"""
import json
import re

from cli.train_flags import as_typed, unshown_flags
from experiments.stats import mean_std
from runfolder.config import read_config
from runfolder.events import STARTS, run_status
from runfolder.header import read_header
from runfolder.layout import RunFolder, is_search_trial
from metrics import best_of, better_is_higher, judged, shown_in, validated_metrics
from runfolder.metrics import metric_lines, records_in, validation_records

# Flags that name or steer a run without changing what it learns: left out of "flags" and of grouping
# (the data has a column of its own, and does group).
NOT_SHOWN = unshown_flags() | {"data"}
SPEED_RECORDS = 20  # clips/s is the median of the last this many loss records
VALIDATED = validated_metrics()  # what validation logs, as val/NAME: what `runs --metric` and --sort take
COLUMNS = shown_in("tables", VALIDATED)  # the scores a run's table and its groups show


def summarize(folder, defaults):
    """One run as a dict of plain values: name, status, network, parameters, flags, steps, epochs,
    last and best validation scores, the identity baseline, clips per second."""
    folder = RunFolder(folder)
    config = read_config(folder)
    lines = metric_lines(folder)  # read once, picked from four times
    validation = validation_records(lines)
    logged = records_in(lines, having="event")
    speeds = records_in(lines, having="time/clips_per_s", last=SPEED_RECORDS)
    steps = max([r["step"] for r in validation + logged + speeds + records_in(lines, last=1)], default=0)
    has_checkpoint = folder.last.exists()
    header = read_header(folder.last) if has_checkpoint else None
    started = [e for e in logged if e["event"] in STARTS]
    last_val = validation[-1] if validation else {}
    run = {
        "name": folder.name,
        "status": run_status(folder, logged),
        "network": config.get("network", "?"),
        "data": config.get("data"),
        "parameters": started[-1].get("parameters/generator") if started else None,
        "flags": {k: v for k, v in sorted(config.items()) if k in defaults and k not in NOT_SHOWN and defaults[k] != v},
        "seed": config.get("seed"),
        "steps": max(steps, header["step"] if header else 0),
        "saved_step": header["step"] if header else None,
        "epochs": max([r.get("epoch", 0) for r in validation + logged if isinstance(r.get("epoch"), int)], default=0),
        "checkpoint": has_checkpoint,
        "clips_per_s": _median([r["time/clips_per_s"] for r in speeds if isinstance(r.get("time/clips_per_s"), (int, float))]),
        "frames_per_clip": config.get("pool"),
        "batch": config.get("batch"),
        "group": group_key(config, search_trial=is_search_trial(folder.name)),
    }
    for metric in VALIDATED:
        values = [r[f"val/{metric}"] for r in validation if isinstance(r.get(f"val/{metric}"), (int, float))]
        run[metric] = last_val.get(f"val/{metric}")
        run[f"best_{metric}"] = best_of(metric, values) if values else None
        run[f"{metric}_identity"] = last_val.get(f"val/{metric}_identity")
    return run


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def group_key(config, search_trial=False):
    """Runs with the same config apart from seed and naming form one group. A search's trials never
    join its finals' group: the trial that won was chosen for scoring best, and would flatter it."""
    kept = {k: v for k, v in sorted(config.items()) if k not in NOT_SHOWN or k == "data"}
    return json.dumps({**kept, **({"search trial": True} if search_trial else {})}, sort_keys=True)


def group_label(names):
    """A readable name for a group: its runs' common name without the seed part."""
    stripped = {re.sub(r"_?seed\d+$", "", name) for name in names}
    return stripped.pop() if len(stripped) == 1 else min(names)


def short_names(names):
    """{name: what tells it apart}: the name's _-separated parts that not every other name shares."""
    split = {name: name.split("_") for name in names}
    shared = set.intersection(*(set(parts) for parts in split.values())) if len(names) > 1 else set()
    return {name: "_".join(p for p in parts if p not in shared) or name for name, parts in split.items()}


def groups(runs, metric="psnr", alpha=None):
    """Runs grouped by config (seeds pooled): n, mean and deviation of each last score, and each
    group's verdict on `metric` by experiments/verdict.py's rule (every pair of groups tested, the
    error held at `alpha`, 5% unless told, across them) among the groups on the same data. Scores on other data are
    scores on other held-out frames: a sweep over several datasets gets a verdict per dataset.
    These are validation scores, the frames a search and its pruner chose on: `verdict` judges on
    test footage."""
    from experiments.verdict import ALPHA, decide  # numpy: only when groups are judged, not for `runs -h`

    alpha = ALPHA if alpha is None else alpha
    by_key = {}
    for run in runs:
        by_key.setdefault(run["group"], []).append(run)
    result = []
    for members in by_key.values():
        entry = {"group": group_label([r["name"] for r in members]), "runs": [r["name"] for r in members],
                 "n": len(members), "data": members[0].get("data")}
        for name in VALIDATED:
            values = [r[name] for r in members if isinstance(r.get(name), (int, float))]
            entry[name] = values
            entry[f"{name}_mean"], entry[f"{name}_std"] = mean_std(values) if values else (None, None)
        result.append(entry)
    for data in {g["data"] for g in result if g[f"{metric}_mean"] is not None}:
        scored = [g for g in result if g["data"] == data and g[f"{metric}_mean"] is not None]
        names = [g["group"] if [h["group"] for h in scored].count(g["group"]) == 1 else f"{g['group']} ({i})" for i, g in enumerate(scored)]
        short = short_names(names)  # a verdict names the other group as the table shows it
        labels = [short[name] for name in names]
        words = decide({label: [judged(metric, v) for v in g[metric]] for label, g in zip(labels, scored)}, better_is_higher(metric), alpha)
        for label, g in zip(labels, scored):
            g["verdict"] = words[label]
    return result


def sort_keys():
    """{--sort value: (run field, largest first, metric or None)}: the run's own fields, then every
    validated score and its best, best first in the direction the metric registry gives it."""
    keys = {"name": ("name", False, None), "status": ("status", False, None), "steps": ("steps", True, None),
            "params": ("parameters", True, None), "clips": ("clips_per_s", True, None)}
    for metric in VALIDATED:
        keys[metric] = (metric, better_is_higher(metric), metric)
        keys[f"best_{metric}"] = (f"best_{metric}", better_is_higher(metric), metric)
    return keys


def sort_runs(runs, field, descending=False, metric=None):
    """`runs` ordered by one of their fields (a score by what its metric is judged on); runs without it last."""
    present = [r for r in runs if r.get(field) is not None]
    missing = [r for r in runs if r.get(field) is None]
    return sorted(present, key=lambda r: judged(metric, r[field]) if metric else r[field], reverse=descending) + missing


def _num(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def run_rows(runs):
    """Rows for the runs table (strings), in the order of RUN_HEADER: each run named by what tells it
    apart from the others shown (a sweep's folder names repeat every flag it was given)."""
    labels = short_names([r["name"] for r in runs]) if runs else {}
    return [[labels[r["name"]], r["status"] + ("" if r["checkpoint"] else " (no last.pt)"), r["network"],
             _num(r["parameters"] / 1e6 if r["parameters"] else None), str(r["steps"]), str(r["epochs"]),
             *(f"{_num(r[name], m.digits)} ({_num(r[f'best_{name}'], m.digits)})" for name, m in COLUMNS),
             _num(r["psnr_identity"]), _num(r["clips_per_s"]), as_typed(r["flags"])] for r in runs]


RUN_HEADER = ["name", "status", "net", "M params", "steps", "epochs", *(f"{m.short} (best)" for _, m in COLUMNS),
              "identity PSNR", "clips/s", "flags"]
GROUP_HEADER = ["group", "seeds", *(m.short for _, m in COLUMNS), "on validation frames (every pair, Holm)"]


def group_rows(group_list):
    def spread(g, name, digits):
        return "-" if g[f"{name}_mean"] is None else f"{g[f'{name}_mean']:.{digits}f} ± {g[f'{name}_std']:.{digits}f}"

    labels = short_names([g["group"] for g in group_list]) if len({g["group"] for g in group_list}) == len(group_list) else {}
    return [[labels.get(g["group"], g["group"]), str(g["n"]), *(spread(g, name, m.digits) for name, m in COLUMNS), g.get("verdict", "-")]
            for g in group_list]


def text_table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
