"""Export a trained generator for use outside vgan: ONNX, checked against eager PyTorch with ONNX
Runtime on real frames of the run's dataset at two sizes before it is written, or safetensors (the
weights as tensors and the run's record as metadata: no pickle, no code).

    python main.py export --checkpoint checkpoints/unet_sample -o unet_sample.onnx
    python main.py export --checkpoint checkpoints/unet_sample -o unet_sample.safetensors --format safetensors
    python main.py export --checkpoint checkpoints/unet_day_night -o night.onnx --direction AtoB
    python main.py compare --backend onnxruntime --model unet_sample.onnx --video videos/sample.mp4
The ONNX model takes float32 clips (N, 3, T, H, W) of RGB values in [-1, 1], T the run's clip
frames and H, W any multiples of its size multiple (its metadata says which), and gives clips of
the same shape. A run kept with --ema exports its average of the weights (--weights trained: the
trained ones); an unpaired run exports one direction (--direction).
"""
from pathlib import Path

from utils.errors import UsageError

HELP = "export a trained generator to ONNX (checked with ONNX Runtime) or safetensors"


def add_arguments(parser):
    parser.add_argument("--checkpoint", help="an experiment folder or a .pt file (default: the most recent experiment in checkpoints/)")
    parser.add_argument("-o", "--output", required=True, help="the file to write: NAME.onnx or NAME.safetensors")
    parser.add_argument("--format", choices=["onnx", "safetensors"], help="default: from the output's suffix, else onnx")
    parser.add_argument("--weights", choices=["average", "trained"], default="average",
                        help="for a run trained with --ema: its average of the weights, or the trained weights themselves")
    parser.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB", help="for a model trained unpaired: which way it translates")
    parser.add_argument("--network-source", metavar="PATH", help="where a plug-in generator's file is now, if it moved (default: where it was)")


def main(args):
    import torch

    from datasets.store import load_dataset
    from inference.export import export_onnx, export_safetensors
    from training.trained_model import latest_experiment, load_model

    form = args.format or (Path(args.output).suffix[1:] if Path(args.output).suffix in (".onnx", ".safetensors") else "onnx")
    if Path(args.output).suffix not in ("", f".{form}"):
        raise UsageError(f"argument -o/--output: {args.output} does not end in .{form}, the format written")
    model = load_model(args.checkpoint or latest_experiment(), torch.device("cpu"), args.network_source,
                       average=args.weights == "average", direction=args.direction)
    if form == "safetensors":
        export_safetensors(model, args.output)
        print(f"wrote {args.output}: {model.state['network']} weights ({'average' if model.averaged else 'trained'}) and the run's record")
        return 0
    dataset = load_dataset(model.data, mmap=True)
    side = "b" if model.direction == "BtoA" else "a"  # the input side of the direction exported
    start = (dataset.ranges("val", side) or [(0, 0)])[0][0]  # held-out frames where there are enough
    frames = getattr(dataset, side)[start:start + model.clip_frames]
    if len(frames) < model.clip_frames:
        frames = getattr(dataset, side)[:model.clip_frames]
    difference = export_onnx(model, frames, args.output)
    print(f"wrote {args.output}: ONNX Runtime matches PyTorch within {difference:.2g} (at most {1e-3:g} allowed) on "
          f"{model.data}'s frames at two sizes")
    return 0
