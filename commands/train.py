"""Train a 3D-conv video GAN: a generator (-net unet|resnet) against a conditional 3D PatchGAN.

    python main.py train -net unet                                   # on the built-in sample
    python main.py train -net resnet --data data/day2night --gan-loss lsgan --l1 100 --epochs 50 --amp
    python main.py train --name unet_sample --resume                 # continue where it stopped
    torchrun --nproc-per-node 4 main.py train -net unet --data data/day2night   # data-parallel
"""
from pathlib import Path

from cli.train_flags import add_train_flags, default_flags, typed_flags
from utils.errors import UsageError

HELP = "train a generator against a 3D-conv discriminator"


def add_arguments(parser):
    add_train_flags(parser)


def check_clip_flags(args):
    """-pool and --step against the dataset's training segments, before anything is loaded."""
    from datasets.store import read_meta

    if not Path(args.data, "meta.json").exists():
        return  # missing data is reported where it is loaded (or the sample data is built)
    longest = max(s["val_start"] - s["start"] for s in read_meta(args.data)["segments"])
    if args.pool > longest:
        raise UsageError(f"argument -pool/--pool: {args.pool} frames is longer than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")
    if args.step > longest:
        raise UsageError(f"argument --step: {args.step} is larger than every training segment of {args.data} "
                         f"(the longest has {longest} frames)")


def main(args):
    if args.allow_new_data and not args.resume:
        raise UsageError("--allow-new-data goes with --resume")
    if not args.resume:
        check_clip_flags(args)
    defaults = default_flags()
    config = {dest: getattr(args, dest) for dest in defaults}
    if config["name"] is None:
        config["name"] = f"{config['network']}_{Path(config['data']).name}"
    from experiments.report import write_report
    from training.loop import train

    return train(config, explicit=typed_flags(args), defaults=defaults, on_epoch_end=write_report)
