"""What a generator is, before it trains: parameters, GFLOP per clip, its receptive field in frames
and pixels (measured from its gradients), the size multiple it needs, memory per pixel, forward
and backward time here in each precision and layout, and the checks it must pass (a clip to a
clip of the same shape and range, bfloat16 and channels_last_3d, --residual at the identity,
tiles that match whole frames). Each failed check is one line; the exit code is 1 if any failed.

    python main.py inspect-network -net unet --depth 3
    python main.py inspect-network -net examples/factorised.py:Factorised --net-arg dilation=3 -pool 16 --size 128
"""
import argparse

from cli.argtypes import frame_size, positive_int
from cli.train_flags import add_train_flags, default_flags, flags_in
from commands.train import HelpAction, typed_network_arguments
from utils.size import Size

HELP = "measure and check a generator (yours or a built-in) before training it"
HELP_ACTION = HelpAction  # after -net FILE.py:Class, -h lists its arguments


def add_arguments(parser):
    add_train_flags(parser, options_of=lambda flag: dict(flag.options), flags=flags_in("generator"))
    clip = parser.add_argument_group("the clip it is measured on")
    clip.add_argument("-pool", "--pool", type=positive_int, default=9, help="frames per clip (T)")
    clip.add_argument("--size", type=frame_size, default=Size(64, 64), help="frame size, SIDE or WIDTHxHEIGHT")
    clip.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto picks CUDA when present")
    clip.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True,
                      help="time the forward and backward passes in each precision and layout; --no-timing gives the checks only")


def main(args):
    import torch

    from inference.inspection import inspect_generator, time_generator
    from inference.tiles import round_up
    from networks import generator_spec
    from networks.layers import size_multiple
    from training.run_spec import run_spec
    from compute.precision import amp_pays_here
    from utils.device import cpu_flags, pick_device

    config = {**default_flags(), **{flag.dest: getattr(args, flag.dest) for flag in flags_in("generator")}}
    config["net_args"] = typed_network_arguments(generator_spec(config["network"]), config["net_args"], "--net-arg")
    config["residual"] = "off"  # the body is inspected; whether --residual starts at the identity is one of the checks
    device = pick_device(args.device)
    generator = run_spec(config).build_generator(torch.device("cpu"))
    model, flags = cpu_flags()
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"cpu ({model}; {' '.join(flags)})"
    print(f"{config['network']} at clips of {args.pool} frames of {args.size} on {where}:")
    facts, problems = inspect_generator(generator, args.pool, args.size, device)
    width = max(len(fact.name) for fact in facts)
    for fact in facts:
        print(f"  {fact.name:<{width}}  {fact.value}")
    if args.timing and not problems:
        multiple = size_multiple(generator)
        clip = torch.rand(1, 3, args.pool, round_up(args.size.height, multiple), round_up(args.size.width, multiple),
                          device=device) * 2 - 1
        timings = time_generator(generator, clip, device)
        print("  time per clip (median of 3, the ways taking turns" + ("" if amp_pays_here(device) else
                                                                    "; no bfloat16 in hardware here, so not timed") + "):")
        for name, (forward, both) in timings.items():
            print(f"    {name:<20} {forward * 1e3:9.1f} ms forward  {both * 1e3:9.1f} ms forward and backward")
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0
