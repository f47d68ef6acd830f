"""What compare and evaluate both set up from their flags before they run: the device, the trained
model (the latest experiment when no --checkpoint is given) and its generator for a clip shape,
in tiles, precision and layout as the inference flags ask (for an unpaired model, its generator
back as well). Not a command of its own.

    device, model, generate, back = trained_generator(args, clip_shape=lambda model: (4, model.clip_frames, 64, 64))
"""
from utils.errors import UsageError


def trained_generator(args, clip_shape):
    """(device, TrainedModel, ClipGenerator, the ClipGenerator back or None); `clip_shape(model)`
    gives the (B, T, H, W) it runs on."""
    from inference.generate import clip_generator
    from training.trained_model import latest_experiment, load_model
    from utils.device import pick_device

    if getattr(args, "backend", "torch") == "onnxruntime":
        return onnx_generator(args, clip_shape)
    if getattr(args, "model", None):
        raise UsageError("argument --model: goes with --backend onnxruntime (a checkpoint is given with --checkpoint)")
    device = pick_device(args.device)
    model = load_model(args.checkpoint or latest_experiment(), device, args.network_source, args.allow_changed_network,
                       average=args.weights == "average", direction=args.direction)
    shape = clip_shape(model)

    def planned(one):
        return clip_generator(one, device, shape, args.amp, args.memory_format, args.max_memory, args.tile, args.tile_overlap)

    generate = planned(model)
    back = planned(model.going_back()) if model.unpaired else None
    return device, model, generate, back


def onnx_generator(args, clip_shape):
    """trained_generator's answer for an exported ONNX model run by ONNX Runtime on the CPU."""
    import torch

    from inference.onnx_runtime import onnx_clip_generator
    from training.trained_model import load_onnx

    if not args.model:
        raise UsageError("argument --model: --backend onnxruntime runs an exported model: give --model FILE.onnx")
    if args.checkpoint:
        raise UsageError("argument --checkpoint: --backend onnxruntime runs --model; the checkpoint's own run is the torch backend")
    model = load_onnx(args.model)
    generate = onnx_clip_generator(model.generator, args.model, clip_shape(model), args.max_memory, args.tile)
    return torch.device("cpu"), model, generate, None
