"""What compare and evaluate both set up from their flags before they run: the device, the trained
model (the latest experiment when no --checkpoint is given) and its generator for a clip shape,
in tiles, precision and layout as the inference flags ask (for an unpaired model, its generator
back as well). Not a command of its own.

    device, model, generate, back = trained_generator(args, clip_shape=lambda model: (4, model.clip_frames, 64, 64))
"""


def trained_generator(args, clip_shape):
    """(device, TrainedModel, ClipGenerator, the ClipGenerator back or None); `clip_shape(model)`
    gives the (B, T, H, W) it runs on."""
    from inference.generate import clip_generator
    from training.trained_model import latest_experiment, load_model
    from utils.device import pick_device

    device = pick_device(args.device)
    model = load_model(args.checkpoint or latest_experiment(), device, args.network_source, args.allow_changed_network,
                       average=args.weights == "average", direction=args.direction)
    shape = clip_shape(model)

    def planned(one):
        return clip_generator(one, device, shape, args.amp, args.memory_format, args.max_memory, args.tile, args.tile_overlap)

    generate = planned(model)
    back = planned(model.going_back()) if model.unpaired else None
    return device, model, generate, back
