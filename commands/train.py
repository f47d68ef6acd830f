"""Train a 3D-conv video GAN: a generator (-net unet|resnet) against a conditional 3D PatchGAN.

    python main.py train -net unet                                   # on the built-in sample
    python main.py train -net resnet --data data/day2night --gan-loss lsgan --l1 100 --epochs 50 --amp
    python main.py train --name unet_sample --resume                 # continue where it stopped
    torchrun --nproc-per-node 4 main.py train -net unet --data data/day2night   # data-parallel
"""
import argparse
from pathlib import Path

from utils.argtypes import frame_size, non_negative_float, non_negative_int, positive_float, positive_int
from utils.errors import UsageError

HELP = "train a generator against a 3D-conv discriminator"
NETWORKS = ("resnet", "unet")  # networks.GENERATORS; listed here so `-h` needs no torch import
GAN_LOSSES = ("dcgan", "hinge", "lsgan", "none")
RUN_ONLY = {"--name", "--checkpoints", "--resume", "--allow-new-data", "--dry-run", "--seed"}  # a sweep sets these itself
SWITCH_VALUES = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


def switch_value(text):
    if text.lower() not in SWITCH_VALUES:
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return SWITCH_VALUES[text.lower()]


def grid_version(kw):
    """The keyword arguments of a flag made to take a comma-separated list of values (a list)."""
    kw = dict(kw)
    if kw.pop("action", None) == "store_true":
        kw.update(nargs="?", const="on", metavar="on,off")
        base = switch_value
    else:
        base = kw.pop("type", str)
    choices = kw.pop("choices", None)

    def values(text):
        parsed = [base(part.strip()) for part in str(text).split(",")]
        for value in parsed if choices else []:
            if value not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(choices)})")
        return parsed

    values.__name__ = getattr(base, "__name__", "value")
    kw.update(type=values, default=None, help=kw["help"] + "; comma-separated values are swept")
    return kw


def add_arguments(parser, grid=False, registry=None):
    """The train flags. With `grid` (for sweep), every value flag takes comma-separated values and
    switches take on,off; flags that name or steer one run are left out. `registry` collects
    (dest, long flag, is a switch) for each flag added."""
    def add(group, *names, **kw):
        if grid and names[-1] in RUN_ONLY:
            return
        switch = kw.get("action") == "store_true"
        action = group.add_argument(*names, **(grid_version(kw) if grid else kw))
        if registry is not None:
            registry.append((action.dest, names[-1], switch))

    data = parser.add_argument_group("data")
    add(data, "--data", default="data/sample", help="dataset folder from build-dataset (data/sample is built from the built-in sample video when missing)")
    add(data, "-pool", "--pool", type=positive_int, default=9, help="frames per clip (T)")
    add(data, "--step", type=positive_int, default=3, help="frames between the starts of two training clips")
    add(data, "-batch", "--batch", type=positive_int, default=5, help="clips per step (per process under torchrun)")
    add(data, "--crop", type=frame_size, help="random crop of each training clip, SIDE or WIDTHxHEIGHT (default: whole frames)")
    add(data, "--flip", action="store_true", help="random horizontal flips of training clips")
    add(data, "--mmap", action="store_true", help="memory-map the dataset instead of loading it (for data larger than RAM)")

    net = parser.add_argument_group("networks")
    add(net, "-net", "--network", choices=NETWORKS, default="unet", help="generator")
    add(net, "--channels", type=positive_int, default=16, help="generator channels at the first level; they double per level")
    add(net, "--depth", type=positive_int, default=4, help="unet: levels (frame sides must be multiples of 2^depth)")
    add(net, "--temporal-pool", action="store_true", help="unet: pool over time as well as space")
    add(net, "--blocks", type=positive_int, default=6, help="resnet: residual blocks")
    add(net, "--downsample", type=non_negative_int, default=2, help="resnet: strided levels (frame sides must be multiples of 2^downsample)")
    add(net, "--se", action="store_true", help="resnet: squeeze-excitation in every residual block")
    add(net, "--d-channels", type=positive_int, default=32, help="discriminator channels at the first layer; they double per layer")
    add(net, "--d-layers", type=positive_int, default=3, help="discriminator strided layers")
    add(net, "--spectral-norm", action="store_true", help="spectral norm on the discriminator's convolutions")

    loss = parser.add_argument_group("losses and optimisation")
    add(loss, "--gan-loss", choices=GAN_LOSSES, default="dcgan", help="adversarial loss; none trains a plain regression baseline")
    add(loss, "--l1", type=non_negative_float, default=100.0, help="weight of the L1 loss to the target")
    add(loss, "--mse", type=non_negative_float, default=0.0, help="weight of the squared-error loss to the target")
    add(loss, "-lr", "--lr", type=positive_float, default=2e-4, help="Adam learning rate (betas 0.5, 0.999)")
    add(loss, "-epoch", "--epochs", type=positive_int, default=20, help="epochs to train")
    add(loss, "--decay-epochs", type=non_negative_int, default=0, help="the last N epochs decay the learning rate linearly to zero")
    add(loss, "--max-steps", type=positive_int, help="stop after this many steps in all (default: --epochs decides)")
    add(loss, "--seed", type=non_negative_int, default=0, help="seed of the weights, the data order and the augmentations")

    run = parser.add_argument_group("run")
    add(run, "--name", help="experiment name under --checkpoints (default: NETWORK_DATANAME)")
    add(run, "--checkpoints", default="checkpoints", help="folder holding the experiment folders")
    add(run, "--resume", action="store_true", help="continue the experiment from its last.pt; flags you type override the saved ones")
    add(run, "--allow-new-data", action="store_true", help="with --resume: accept a dataset other than the one trained on")
    add(run, "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto picks CUDA when present")
    add(run, "--amp", action="store_true", help="mixed precision: bfloat16 on CPU, float16 or bfloat16 on CUDA")
    add(run, "--memory-format", choices=["auto", "contiguous", "channels_last"], default="auto",
                     help="tensor layout; auto uses channels_last_3d on CUDA with --amp, contiguous otherwise")
    add(run, "--sample-every", type=positive_int, default=1, help="validate and write samples every N epochs")
    add(run, "--log-every", type=positive_int, default=10, help="write losses to metrics.jsonl every N steps")
    add(run, "--save-every", type=non_negative_int, default=0, help="also save last.pt every N steps (0: at epoch ends only)")
    add(run, "--keep", type=non_negative_int, default=3, help="epoch_NNNN.pt checkpoints to keep beside last.pt")
    add(run, "--dry-run", action="store_true", help="one training step and one validation pass, then exit; nothing is kept")


def explicit_flags(argv):
    """The destinations of the flags typed in `argv` (defaults left out): they override a resumed config."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    unset = object()  # argparse fills in defaults only for attributes the namespace lacks
    namespace = argparse.Namespace(**{dest: unset for dest in vars(parser.parse_args([]))})
    return {dest for dest, value in vars(parser.parse_args(argv, namespace)).items() if value is not unset}


def default_flags():
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return vars(parser.parse_args([]))


def check_clip_flags(args):
    """-pool and --step against the dataset's training segments, before anything is loaded."""
    from datasets.store import read_meta

    if not Path(args.data, "meta.json").exists():
        return  # missing data is reported where it is loaded (or data/sample is built)
    longest = max(s["val_start"] - s["start"] for s in read_meta(args.data)["segments"])
    if args.pool > longest:
        raise UsageError(f"argument -pool/--pool: {args.pool} frames is longer than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")
    if args.step > longest:
        raise UsageError(f"argument --step: {args.step} is larger than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")


def run(args):
    if args.allow_new_data and not args.resume:
        raise UsageError("--allow-new-data goes with --resume")
    if not args.resume:
        check_clip_flags(args)
    config = {k: v for k, v in vars(args).items() if k not in ("run", "argv", "command")}
    if config["name"] is None:
        config["name"] = f"{config['network']}_{Path(config['data']).name}"
    from training.loop import train

    return train(config, explicit=explicit_flags(args.argv), defaults=default_flags())
