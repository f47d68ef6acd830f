"""The answer to "is this structure better?", on test footage no run trained or validated on: every
finished run's last checkpoint over every test clip of its dataset, seed groups compared with
intervals, P(A > B) and decisions whose error is held at --alpha across every comparison
(experiments/verdict.py). It writes CHECKPOINTS/verdict.html, and keeps every score, so running it
again after more seeds scores only the new runs.

    python main.py verdict
    python main.py verdict --checkpoints checkpoints --select '*_final_*' --metrics lpips --effect 0.2
Search trials are left out (each was chosen on validation frames); judge a search by its finals.
"""
import fnmatch
import json
from pathlib import Path

from cli.argtypes import positive_float, significance
from cli.inference_flags import add_inference_flags
from metrics import validated_metrics
from utils.errors import UsageError, UserError

HELP = "judge seed groups on the dataset's test footage: intervals, P(A > B), decisions with error control"


def add_arguments(parser):
    parser.add_argument("--checkpoints", default="checkpoints", help="folder holding the experiment folders")
    parser.add_argument("--select", default="*", help="only runs whose name matches this pattern (shell-style, e.g. '*_final_*')")
    parser.add_argument("--decide", type=_decidable, metavar="NAMES",
                        help="the scores decisions are made on, comma-separated; Holm's procedure holds the error across "
                             "all of them (default: psnr,jod; cycle_psnr for runs trained unpaired)")
    parser.add_argument("--alpha", type=significance, default=0.05,
                        help="the chance of calling any group worse when none is, across every comparison")
    parser.add_argument("--effect", type=positive_float, metavar="X",
                        help="also print how many seeds a group it takes to find a difference of X in the first decided "
                             "score with 80%% power (default: not printed)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON instead of tables")
    add_inference_flags(parser)
    # Every run computes the same way, so that scores differ by the network alone (a choice timed per network could differ).
    parser.set_defaults(amp="off")


def _decidable(text):
    from cli.argtypes import name_list

    return name_list(validated_metrics())(text)


def main(args):
    from datasets.store import read_meta
    from datasets.test_part import check_clip_frames, test_clips
    from experiments.runs import summarize
    from experiments.test_scores import ScoringSettings, score_runs, structure_facts_of, wanted_metrics
    from experiments.verdict_page import grouped, judge_scores, print_verdict, search_curves, verdict_record, write_verdict_page
    from cli.train_flags import default_flags
    from metrics import perception_distortion, too_small, unpaired_metrics
    from runfolder.events import FINISHED
    from runfolder.layout import CheckpointsRoot, VerdictFolder, is_search_trial
    from utils.device import pick_device
    from utils.fsio import write_json_atomic

    root = CheckpointsRoot(args.checkpoints)
    folders = [f for f in root.folders() if fnmatch.fnmatchcase(f.name, args.select) and not is_search_trial(f.name)]
    summaries = {f.name: summarize(f, default_flags()) for f in folders}
    finished = {name: run for name, run in summaries.items() if run["status"] == FINISHED and run["checkpoint"]}
    if not finished:
        raise UserError(root.path, f"holds no finished run{' matching ' + repr(args.select) if args.select != '*' else ''} to "
                                   f"judge (search trials are left out); train some with `python main.py sweep ... --seeds 3`")
    left_out = sorted(set(summaries) - set(finished))
    datasets = {}
    for name, run in finished.items():
        datasets.setdefault(str(Path(run["data"]).resolve()) if run["data"] else "?", []).append(name)
    if len(datasets) > 1:
        which = "; ".join(f"{data} ({len(names)} runs, e.g. {names[0]})" for data, names in datasets.items())
        raise UserError(root.path, f"its runs were trained on different datasets ({which}); judge one at a time with --select")
    data = finished[next(iter(finished))]["data"]
    meta = read_meta(data)
    unpaired = bool(meta.get("unpaired"))
    clips = test_clips(data, meta, side="b" if args.direction == "BtoA" else "a")
    for name, run in finished.items():
        check_clip_frames(data, clips, run["frames_per_clip"] or 1, f"{name}'s")
    if too_small(args.metrics, meta["width"], meta["height"]):
        raise UsageError(f"argument --metrics: {too_small(args.metrics, meta['width'], meta['height'])} in {data}")
    if unpaired and args.metrics:
        raise UsageError(f"argument --metrics: the runs were trained unpaired, and their test footage has no target to score "
                         f"{', '.join(args.metrics)} against; they are judged by their round trip")
    # Judged by default on the perception-distortion view's two axes (PSNR and JOD), the perceptual one asked for by name.
    axes = list(perception_distortion())
    requested = [] if unpaired else [n for n in [axes[1], *args.metrics] if not too_small([n], meta["width"], meta["height"])]
    requested = list(dict.fromkeys(requested))
    metrics = wanted_metrics(unpaired, requested)
    decide = args.decide or [n for n in (unpaired_metrics()[:1] if unpaired else axes) if n in metrics]
    unknown = [n for n in decide if n not in metrics]
    if unknown:
        raise UsageError(f"argument --decide: {unknown[0]} is not scored on this dataset's test clips (these are: {', '.join(metrics)})")
    settings = ScoringSettings(pick_device(args.device), args.amp, args.memory_format, args.max_memory, args.tile, args.tile_overlap,
                               args.weights, args.direction, tuple(requested), args.metric_weights, quiet=args.quiet)
    folder = VerdictFolder(root.path)
    groups = grouped(finished)
    firsts = {members[0] for members in groups.values()}
    table, scored_now = score_runs({name: root.folder(name).path for name in finished}, clips, settings, root.path,
                       keep_images=lambda name: folder.images(name) if name in firsts else None, fps=meta.get("fps") or 25)
    pairs = len(finished) * len(clips)
    if not args.json:
        print(f"scored {scored_now} run-clip pairs anew, {pairs - scored_now} from the cache ({folder.scores})", flush=True)
    verdict = judge_scores(groups, table, clips, metrics, decide, args.alpha)
    facts = {label: structure_facts_of(root.folder(names[0]).path, settings.device) for label, names in groups.items()}
    curves = search_curves(root.search_summary, {label: finished[names[0]]["network"] for label, names in groups.items()})
    record = verdict_record(verdict, groups, finished, clips, data, settings, args.effect, left_out, facts, curves)
    write_json_atomic(folder.result, record)
    page = write_verdict_page(folder, record, settings)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print_verdict(record)
        print(f"\npage: {page}")
    return 0
