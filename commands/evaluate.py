"""Score a trained generator on the held-out validation windows of a dataset (or, with --split test,
on its test footage, which no run trained on; `verdict` judges whole seed groups there), next to the identity
baseline (the input itself taken as the answer): PSNR, SSIM, L1, and the temporal scores
(masked warping error, tOF and the flicker ratio; metrics/temporal.py).

    python main.py evaluate --checkpoint checkpoints/unet_sample
    python main.py evaluate --checkpoint checkpoints/unet_sample --data data/other --json
    python main.py evaluate --checkpoint checkpoints/unet_sample --split test
A model trained unpaired is scored on the held-out windows of --direction's side of an unpaired
dataset by the round trip and its steadiness, or on a paired dataset (a known answer) as usual.
"""
import json

from cli.inference_flags import add_inference_flags
from commands.trained import trained_generator
from metrics import too_small
from utils.errors import UsageError

HELP = "score a trained generator on a dataset's validation windows"
EVALUATE_BATCH = 4  # windows per forward pass


def add_arguments(parser):
    parser.add_argument("--checkpoint", help="an experiment folder or a .pt file (default: the most recent experiment in checkpoints/)")
    parser.add_argument("--data", help="dataset folder (default: the one the checkpoint was trained on)")
    parser.add_argument("--split", choices=["val", "test"], default="val",
                        help="the dataset's validation frames (later frames of the training shots), or its test footage, "
                             "which no run trained or validated on (each clip run whole)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    add_inference_flags(parser)


def main(args):
    from datasets.store import read_meta
    from experiments.report import record_result
    from inference.evaluate import evaluate_model
    from metrics.scores import score_table

    def clip_shape(model):
        meta = read_meta(args.data or model.data)
        return EVALUATE_BATCH, model.clip_frames, meta["height"], meta["width"]

    device, model, generate, back = trained_generator(args, clip_shape)
    meta = read_meta(args.data or model.data)
    if too_small(args.metrics, meta["width"], meta["height"]):
        raise UsageError(f"argument --metrics: {too_small(args.metrics, meta['width'], meta['height'])} in {args.data or model.data}")
    if not args.json:
        print(f"generating {generate.plan}", flush=True)
    result = evaluate_model(model, generate, args.data, EVALUATE_BATCH, quiet=args.quiet, back=back, metrics=args.metrics,
                            device=str(device), weights=args.metric_weights, split=args.split)
    record_result(result, "evaluation")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if args.split == "test":
            print(f"{result['checkpoint']} (step {result['step']}) on the test footage of {result['data']}: "
                  + ", ".join(f"{c['name']} ({c['frames']} frames)" for c in result["clips"]) + "; the mean over them, by frames:")
        else:
            print(f"{result['checkpoint']} (step {result['step']}) on the validation part of {result['data']}: "
                  f"{result['windows']} windows, {result['frames']} frames")
        print(score_table(result["scores"]))
    return 0
