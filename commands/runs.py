"""A table of every experiment under checkpoints/: status, network, size, the flags that differ
from the defaults, progress, last and best validation scores next to the identity baseline, speed;
runs that differ only by seed are grouped and judged by the verdict's rule (experiments/verdict.py) on
validation frames, the data the choices were made on; `verdict` judges on test footage. It also rewrites
checkpoints/index.html, a page with the table, the curves overlaid and one clip from every run.

    python main.py runs
    python main.py runs --sort psnr --select 'unet*'
    python main.py runs --json
"""
import fnmatch
import json

from metrics import unpaired_metrics, validated_metrics

HELP = "compare every experiment under checkpoints/ (table, seed groups, index.html)"


def add_arguments(parser):
    parser.add_argument("--checkpoints", default="checkpoints", help="folder holding the experiment folders")
    from experiments.runs import sort_keys

    parser.add_argument("--sort", choices=sorted(sort_keys()), default="name",
                        help="order of the table (scores best first, a ratio by its distance from 1)")
    parser.add_argument("--select", default="*", help="only runs whose name matches this pattern (shell-style, e.g. 'unet*')")
    parser.add_argument("--metric", choices=validated_metrics(), default="psnr",
                        help="validation score used to find the best group and test the others against it, in the "
                             "direction it is better (runs trained unpaired have no target: "
                             f"{', '.join(unpaired_metrics())})")
    parser.add_argument("--json", action="store_true", help="print the runs and groups as JSON instead of tables")


def main(args):
    from cli.train_flags import default_flags
    from experiments.page import write_comparison_page
    from experiments.runs import GROUP_HEADER, RUN_HEADER, group_rows, groups, run_rows, sort_keys, sort_runs, summarize, text_table
    from runfolder.layout import CheckpointsRoot

    defaults = default_flags()
    folders = [f for f in CheckpointsRoot(args.checkpoints).folders() if fnmatch.fnmatchcase(f.name, args.select)]
    runs = sort_runs([summarize(folder, defaults) for folder in folders], *sort_keys()[args.sort])
    group_list = groups(runs, args.metric)
    page = write_comparison_page(args.checkpoints, runs, group_list) if folders else None
    if args.json:
        print(json.dumps({"runs": runs, "groups": group_list}, indent=2, default=str))
        return 0
    if not runs:
        print(f"no experiments in {args.checkpoints}/ yet; train one with `python main.py train`")
        return 0
    print(text_table(RUN_HEADER, run_rows(runs)))
    if any(g["n"] > 1 for g in group_list):
        print(f"\nseed groups (last validation scores, mean ± std; on {args.metric}, Welch's t-test between every pair of "
              f"groups, Holm's procedure holding the chance of any false \"worse\" at 5%):")
        print(text_table(GROUP_HEADER, group_rows(group_list)))
        print(f"\nThese are validation frames: later frames of the training shots, the ones a search, its pruner and your "
              f"choices were made on, so they flatter whatever was chosen. For the answer, on test footage no run trained "
              f"on: `python main.py verdict --checkpoints {args.checkpoints}`")
    print(f"\npage: {page}")
    return 0
