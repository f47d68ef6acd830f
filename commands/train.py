"""Train a 3D-conv video GAN: a generator (-net unet|resnet, or your own FILE.py:Class) against a
conditional 3D PatchGAN (or your own --disc FILE.py:Class).

    python main.py train -net unet                                   # on the built-in sample
    python main.py train -net resnet --data data/day2night --gan-loss lsgan --l1 100 --epochs 50 --amp
    python main.py train --name unet_sample --resume                 # continue where it stopped
    python main.py train --mode cycle --data data/day_night          # CycleGAN on an unpaired dataset
    torchrun --nproc-per-node 4 main.py train -net unet --data data/day2night   # data-parallel
"""
import argparse
from pathlib import Path

from cli.train_flags import add_train_flags, default_flags, typed_flags
from networks import discriminator_spec, generator_spec
from networks.registry import MODES
from networks.declared import described, typed_arguments
from utils.errors import UsageError, UserError

HELP = "train a generator against a 3D-conv discriminator"


class HelpAction(argparse.Action):
    """-h that, after -net FILE.py:Class (or --disc), also lists that class's constructor arguments,
    read from its source without importing it."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parts = []
        for spec_of, text, arg_flag in ((generator_spec, getattr(namespace, "network", "unet"), "--net-arg"),
                                        (discriminator_spec, getattr(namespace, "disc", "patch"), "--disc-arg")):
            spec = spec_of(text)
            if not spec.builtin:
                try:
                    parts.append(f"arguments of {spec.text} ({arg_flag} NAME=VALUE):\n{described(spec, arg_flag)}")
                except UserError as exc:
                    parts.append(f"arguments of {spec.text}: {exc}")
        parser.epilog = "\n\n".join(parts) or None
        parser.print_help()
        parser.exit()


HELP_ACTION = HelpAction


def add_arguments(parser):
    parser.add_argument("--config", metavar="FILE",
                        help="flags from a TOML file (keys are flag names), or a run's config.json to run it again as it "
                             "was; flags typed on the command line override it (default: none)")
    add_train_flags(parser)


def typed_network_arguments(spec, texts, flag):
    """{name: value} of --net-arg (--disc-arg) for a network from the user's file, typed by its
    constructor; a built-in network takes its flags instead."""
    if not texts:
        return {}
    if spec.builtin:
        raise UsageError(f"argument {flag}: {spec.text} takes its hyperparameters as flags (see -h); "
                         f"{flag} is for a network from your own file")
    return typed_arguments(spec, [f"{name}={value}" for name, value in texts.items()], flag)


def check_clip_flags(args):
    """-pool and --step against the dataset's training segments, before anything is loaded."""
    from datasets.store import read_meta, segments_of

    if not Path(args.data, "meta.json").exists():
        return  # missing data is reported where it is loaded (or the sample data is built)
    meta = read_meta(args.data)
    longest = min(max(s["val_start"] - s["start"] for s in segments_of(meta, side)) for side in "ab")
    if args.pool > longest:
        raise UsageError(f"argument -pool/--pool: {args.pool} frames is longer than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")
    if args.step > longest:
        raise UsageError(f"argument --step: {args.step} is larger than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")


def main(args):
    for flag in ("allow_new_data", "network_source", "disc_source", "allow_changed_network"):
        if getattr(args, flag) and not args.resume:
            raise UsageError(f"--{flag.replace('_', '-')} goes with --resume")
    if not args.resume:
        check_clip_flags(args)
    defaults = default_flags()
    config = {dest: getattr(args, dest) for dest in defaults}
    config["net_args"] = typed_network_arguments(generator_spec(config["network"]), config["net_args"], "--net-arg")
    config["disc_args"] = typed_network_arguments(discriminator_spec(config["disc"]), config["disc_args"], "--disc-arg")
    if "gan_loss" not in typed_flags(args) and not args.resume:
        config["gan_loss"] = MODES[config["mode"]].default_gan_loss
    if config["name"] is None:
        config["name"] = f"{generator_spec(config['network']).short_name}_{Path(config['data']).name}"
    from experiments.report import write_report
    from training.loop import train

    return train(config, explicit=typed_flags(args), defaults=defaults, on_epoch_end=write_report)
