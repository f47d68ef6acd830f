"""Run a trained generator over a whole video and write input | generated | target side by side
(a model trained unpaired: input | translated | back, --direction AtoB or BtoA).

    python main.py compare --video videos/sample.mp4                       # the latest experiment
    python main.py compare --video videos/day.mp4 --target videos/night.mp4 --checkpoint checkpoints/day2night
With no --target, a model trained on a derived pair (gray, edges, blur, ...) gets the video's
derived version as input and the video itself as target. PSNR, SSIM and the temporal scores
(masked warping error, tOF, flicker and seam ratios) are printed and written as JSON beside the
output video, with the warping error of every frame pair; NAME_compare_profile.png beside it is the
temporal profile, an x-t slice through input, generated and target. An unpaired model's
translation has no target: it is scored by the round trip back (PSNR, SSIM) and by its steadiness
under the input's own motion; --target adds PSNR and SSIM against an aligned answer.
    python main.py compare --video videos/day.mp4 --checkpoint checkpoints/unet_day_night --direction AtoB
"""
import argparse
from pathlib import Path

from cli.argtypes import frame_size, non_negative_int, positive_int
from cli.inference_flags import add_inference_flags
from commands.trained import trained_generator
from metrics import too_small
from utils.errors import UsageError

HELP = "run a trained generator over a video and write a side-by-side comparison"


def add_arguments(parser):
    parser.add_argument("--video", required=True, help="the input video (or frame folder)")
    parser.add_argument("--target", help="the aligned target video (default: derived from --video for derived-pair models)")
    parser.add_argument("--checkpoint", help="an experiment folder, a .pt file, or a generator `export --format safetensors` "
                                             "wrote (default: the most recent experiment in checkpoints/)")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                        help="torch: the checkpoint in PyTorch; onnxruntime: an exported --model in ONNX Runtime (CPU, float32)")
    parser.add_argument("--model", metavar="FILE.onnx", help="with --backend onnxruntime: the model `export` wrote (default: none)")
    parser.add_argument("-o", "--output", help="the side-by-side video (default: VIDEO's folder/NAME_compare.mp4)")
    parser.add_argument("--size", type=frame_size, help="frame size the generator runs at, SIDE or WIDTHxHEIGHT (default: the trained size)")
    parser.add_argument("--window", type=positive_int, help="frames per inference window (default: the trained -pool)")
    parser.add_argument("--overlap", type=non_negative_int, help="frames shared by neighbouring windows (default: half of the trained -pool)")
    parser.add_argument("--blend", action=argparse.BooleanOptionalAction, default=True,
                        help="blend the windows where they overlap; --no-blend takes each frame from the one window "
                             "centred nearest to it")
    parser.add_argument("--batch", type=positive_int, default=4, help="windows per forward pass")
    parser.add_argument("--save-generated", metavar="OUT2", help="also write the generated frames alone to this video (default: not written)")
    parser.add_argument("--vmaf", action="store_true", help="add VMAF through ffmpeg's libvmaf (when the binary has it)")
    parser.add_argument("--overwrite", action="store_true", help="replace output files that vgan compare did not write")
    parser.add_argument("--dry-run", action="store_true", help="generate one batch of windows, print its shape, write nothing")
    add_inference_flags(parser)


def main(args):
    from experiments.report import record_result
    from inference.compare import Outputs, Windows, compare_model, comparison_source, dry_run, profile_beside
    from inference.generate import metric_budget
    from metrics.scores import score_table

    def clip_shape(model):
        window = args.window or model.clip_frames
        if overlap_of(model) >= window:
            raise UsageError(f"argument --overlap: must be below the window of {window} frames")
        size = args.size or model.size
        return args.batch, window, size.height, size.width

    def overlap_of(model):
        return model.clip_frames // 2 if args.overlap is None else args.overlap

    device, model, generate, back = trained_generator(args, clip_shape)
    window, overlap = args.window or model.clip_frames, overlap_of(model)
    size = args.size or model.size
    if too_small(args.metrics, size.width, size.height):
        raise UsageError(f"argument --metrics: {too_small(args.metrics, size.width, size.height)}; compare at a larger --size")
    print(f"generating {generate.plan}", flush=True)
    if args.dry_run:
        out = dry_run(comparison_source(args.video, args.target, model.pair), generate, size, window)
        print(f"dry run: generated a window of {out.shape[1]} frames at {out.shape[3]}x{out.shape[2]} from {args.video}; nothing written")
        return 0
    output = Path(args.output) if args.output else Path(args.video).with_name(Path(args.video).stem + "_compare.mp4")
    outputs = Outputs(output, Path(args.save_generated) if args.save_generated else None, profile_beside(output),
                      args.vmaf, args.overwrite, args.quiet, tuple(args.metrics), args.metric_weights, str(device),
                      metric_budget(device, args.max_memory))
    result = compare_model(model, generate, args.video, outputs, args.target, size, Windows(window, overlap, args.batch, args.blend),
                           back)
    panels = " | ".join(["input", *(["translated", "back"] if model.unpaired else ["generated"]), *(["target"] if args.target or (
        not model.unpaired and result["scores"]) else [])])
    way = f", {model.direction[0]} to {model.direction[-1]}" if model.unpaired else ""
    print(f"compared {result['frames']} frames of {args.video} with {result['checkpoint']} (step {result['step']}{way})")
    print(f"wrote {output} ({panels})" + (f" and {args.save_generated}" if args.save_generated else "")
          + f"; its temporal profile: {outputs.profile}")
    record_result(result, "compare", sidecar=output.with_suffix(".json") if result["scores"] else None)
    if result["scores"]:
        print(f"scores in {output.with_suffix('.json')}")
        print(score_table(result["scores"]))
    return 0
