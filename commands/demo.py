"""The whole platform on the built-in sample video, in a few minutes on a laptop CPU: render the
sample, build a gray -> colour dataset, train a small U-Net, compare and evaluate it.

    python main.py demo
It writes videos/sample.mp4, data/demo, checkpoints/demo (with its report, index.html) and
videos/sample_demo.mp4, replacing what an earlier demo wrote there.
"""
import shutil
from pathlib import Path

from cli.argtypes import positive_float, positive_int

HELP = "run the whole pipeline on the built-in sample video"
DATA = Path("data/demo")
EXPERIMENT = "demo"
COMPARISON = Path("videos/sample_demo.mp4")
# Small enough to learn colour in a couple of minutes on two cores of any kind: (2+1)D convolutions
# learn more per second than 3x3x3 ones on an AVX2-only CPU (README, Performance). Spectral norm
# pays in long runs, where the discriminator would win; in the demo's 85 to 300 steps it only slows
# the start (85 steps on AVX2: +2.9 dB over the identity with it, +3.7 dB without).
NETWORK = {"network": "unet", "depth": 3, "channels": 16, "conv": "2plus1d", "d_channels": 16, "spectral_norm": False,
           "pool": 9, "batch": 5}


def add_arguments(parser):
    parser.add_argument("--seconds", type=positive_float, default=120,
                        help="training time; the whole demo takes under 3 minutes on 2 CPU cores")
    parser.add_argument("--steps", type=positive_int, default=300, help="training steps at most (a fast machine stops here)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto picks CUDA when present")


def main(args):
    from cli.train_flags import default_flags
    from datasets.build import build_dataset, derived_sources, describe
    from datasets.sample import ensure_sample
    from experiments.report import record_result, write_report
    from inference.compare import Outputs, compare_model, profile_beside
    from inference.evaluate import evaluate_model
    from inference.generate import clip_generator
    from training.trained_model import load_model
    from runfolder.layout import RunFolder
    from training.loop import train
    from utils.device import pick_device
    from metrics.scores import score_table
    from utils.size import Size

    device = pick_device(args.device)
    folder = RunFolder(Path("checkpoints") / EXPERIMENT)
    print("1/5 the built-in sample video", flush=True)
    sample = ensure_sample()
    print(f"    {sample}: 12 s of drifting gradients, a Game of Life and a spinning test card", flush=True)
    print("2/5 a gray -> colour dataset from it", flush=True)
    meta = build_dataset(DATA, derived_sources([sample], "gray"), Size(64, 64), overwrite=True)
    print("    " + describe(meta, DATA), flush=True)
    print(f"3/5 train a U-Net (depth 3, 16 channels, 2+1D convolutions) on 64x64 clips of 9 frames for {args.seconds:g} s "
          f"or {args.steps} steps, whichever comes first", flush=True)
    shutil.rmtree(folder, ignore_errors=True)  # the demo's own experiment from an earlier run
    config = {**default_flags(), **NETWORK, "data": str(DATA), "name": EXPERIMENT, "max_steps": args.steps,
              "max_seconds": args.seconds, "epochs": 1000, "sample_every": 3, "log_every": 20, "device": args.device}
    code = train(config, on_epoch_end=write_report)
    if code:
        return code
    print(f"4/5 compare on the whole sample video -> {COMPARISON}", flush=True)
    model = load_model(folder, device)
    generate = clip_generator(model, device, (4, model.clip_frames, 64, 64))
    outputs = Outputs(COMPARISON, profile=profile_beside(COMPARISON), overwrite=True, metrics=("jod",), device=str(device))
    record_result(compare_model(model, generate, sample, outputs), "compare")
    print("5/5 evaluate on the held-out frames", flush=True)
    evaluation = evaluate_model(model, generate, metrics=("jod",), device=str(device))
    record_result(evaluation, "evaluation")
    scores = evaluation["scores"]
    print()
    print(f"comparison video: {COMPARISON}  (input | generated | target)")
    print(f"report:           {folder.page}")
    print(f"checkpoint:       {model.path}")
    print(f"\nheld-out frames of {DATA} ({evaluation['frames']} frames):")
    print(score_table(scores))
    beats = scores["psnr"] > scores["psnr_identity"] and scores["l1"] < scores["l1_identity"]
    verdict = "beats" if beats else "does NOT beat"
    print(f"\nthe model {verdict} the identity baseline (the gray input taken as the answer): "
          f"PSNR {scores['psnr']:.2f} dB against {scores['psnr_identity']:.2f} dB, "
          f"{scores['psnr'] - scores['psnr_identity']:+.2f} dB after {model.step} training steps")
    return 0
