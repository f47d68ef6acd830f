"""The train flags' schema: every flag of `train`, with its type, default and help, as data. train,
sweep (which sweeps them), runs (which shows the ones that differ from the defaults) and demo read it.

    parser = argparse.ArgumentParser(); add_train_flags(parser); config = vars(parser.parse_args([]))
"""
import argparse
from dataclasses import dataclass, field

from cli.argtypes import frame_size, non_negative_float, non_negative_int, positive_float, positive_int
from datasets.sample import SAMPLE_DATA
NETWORKS = ("resnet", "unet")  # networks.GENERATORS; listed here so that `-h` needs no torch import (a test checks they agree)
GAN_LOSSES = ("dcgan", "hinge", "lsgan", "none")  # networks.losses.GAN_LOSSES, likewise
CONVS = ("3d", "2plus1d")  # networks.CONVS, likewise


AMP_OPTIONS = {"nargs": "?", "const": "on", "default": "auto", "choices": ["auto", "on", "off"],
               "help": "mixed precision: bfloat16 on a CPU that has it in hardware (AVX512-BF16, AMX) or a GPU, float16 "
                       "on an older GPU with `on`; auto uses it where it is in hardware and measured faster here; "
                       "a bare --amp means on; a CPU without native bfloat16 always runs float32"}


MEMORY_FORMAT_OPTIONS = {"choices": ["auto", "contiguous", "channels_last"], "default": "auto",
                         "help": "tensor layout (channels_last is channels_last_3d); auto measures which is faster here, "
                                 "with the precision, once per machine and job"}


@dataclass(frozen=True)
class Flag:
    group: str
    names: tuple
    options: dict = field(default_factory=dict)
    per_run: bool = False  # names or steers one run (a sweep sets it itself)

    @property
    def dest(self):
        return self.names[-1].lstrip("-").replace("-", "_")

    @property
    def is_switch(self):
        """An on/off flag: --flag (off by default), or --flag / --no-flag (on by default)."""
        return self.options.get("action") in ("store_true", argparse.BooleanOptionalAction)

    def switch_argv(self, value):
        """The arguments that set this switch to `value`."""
        name = self.names[-1]
        if self.options.get("action") is argparse.BooleanOptionalAction:
            return [name if value else "--no-" + name[2:]]
        return [name] if value else []


def _flag(group, *names, per_run=False, **options):
    return Flag(group, names, options, per_run)


TRAIN_FLAGS = (
    _flag("data", "--data", default=SAMPLE_DATA,
          help=f"dataset folder from build-dataset ({SAMPLE_DATA} is built from the built-in sample video when missing)"),
    _flag("data", "-pool", "--pool", type=positive_int, default=9, help="frames per clip (T)"),
    _flag("data", "--step", type=positive_int, default=3, help="frames between the starts of two training clips"),
    _flag("data", "-batch", "--batch", type=positive_int, default=5, help="clips per step (per process under torchrun)"),
    _flag("data", "--crop", type=frame_size, help="random crop of each training clip, SIDE or WIDTHxHEIGHT (default: whole frames)"),
    _flag("data", "--flip", action="store_true", help="random horizontal flips of training clips"),
    _flag("data", "--mmap", action="store_true", help="memory-map the dataset instead of loading it (for data larger than RAM)"),

    _flag("networks", "-net", "--network", choices=NETWORKS, default="unet", help="generator"),
    _flag("networks", "--channels", type=positive_int, default=16, help="generator channels at the first level; they double per level"),
    _flag("networks", "--depth", type=positive_int, default=4, help="unet: levels (frame sides must be multiples of 2^depth)"),
    _flag("networks", "--temporal-pool", action="store_true", help="unet: pool over time as well as space"),
    _flag("networks", "--blocks", type=positive_int, default=6, help="resnet: residual blocks"),
    _flag("networks", "--downsample", type=non_negative_int, default=2,
          help="resnet: strided levels (frame sides must be multiples of 2^downsample)"),
    _flag("networks", "--se", action="store_true", help="resnet: squeeze-excitation in every residual block"),
    _flag("networks", "--residual", choices=["auto", "on", "off"], default="auto",
          help="predict a correction added to the input (identity when untrained); auto: on where input and target "
               "share a domain (blur, lowres, noise, compress, future pairs, and two videos whose input already "
               "scores 20 dB PSNR or more against the target), off for gray and edges"),
    _flag("networks", "--conv", choices=CONVS, default="3d",
          help="3d: full 3x3x3 convolutions; 2plus1d: each factorised into a spatial 1x3x3 and a temporal 3x1x1 one "
               "(fewer FLOPs), in the generator and the discriminator"),
    _flag("networks", "--d-channels", type=positive_int, default=32, help="discriminator channels at the first layer; they double per layer"),
    _flag("networks", "--d-layers", type=positive_int, default=3, help="discriminator strided layers"),
    _flag("networks", "--spectral-norm", action=argparse.BooleanOptionalAction, default=True,
          help="spectral norm on the discriminator's convolutions (instead of its instance norm); it keeps the "
               "discriminator from winning in long runs"),

    _flag("losses and optimisation", "--gan-loss", choices=GAN_LOSSES, default="dcgan",
          help="adversarial loss; none trains a plain regression baseline"),
    _flag("losses and optimisation", "--l1", type=non_negative_float, default=100.0, help="weight of the L1 loss to the target"),
    _flag("losses and optimisation", "--mse", type=non_negative_float, default=0.0, help="weight of the squared-error loss to the target"),
    _flag("losses and optimisation", "-lr", "--lr", type=positive_float, default=1e-3, help="Adam learning rate (betas 0.5, 0.999)"),
    _flag("losses and optimisation", "-epoch", "--epochs", type=positive_int, default=20, help="epochs to train"),
    _flag("losses and optimisation", "--decay-epochs", type=non_negative_int, default=0,
          help="the last N epochs decay the learning rate linearly to zero"),
    _flag("losses and optimisation", "--max-steps", type=positive_int, help="stop after this many steps in all (default: --epochs decides)"),
    _flag("losses and optimisation", "--max-seconds", type=positive_float,
          help="also stop after this many seconds of training (this invocation's, from the first step), and end the run "
               "as at its last step (default: no time limit)"),
    _flag("losses and optimisation", "--seed", type=non_negative_int, default=0, per_run=True,
          help="seed of the weights, the data order and the augmentations"),

    _flag("run", "--name", per_run=True, help="experiment name under --checkpoints (default: NETWORK_DATANAME)"),
    _flag("run", "--checkpoints", default="checkpoints", per_run=True, help="folder holding the experiment folders"),
    _flag("run", "--resume", action="store_true", per_run=True,
          help="continue the experiment from its last.pt; flags you type override the saved ones"),
    _flag("run", "--allow-new-data", action="store_true", per_run=True, help="with --resume: accept a dataset other than the one trained on"),
    _flag("run", "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto picks CUDA when present"),
    _flag("run", "--amp", **AMP_OPTIONS),
    _flag("run", "--memory-format", **MEMORY_FORMAT_OPTIONS),
    _flag("run", "--sample-every", type=positive_int, default=1, help="validate and write samples every N epochs"),
    _flag("run", "--log-every", type=positive_int, default=10, help="write losses to metrics.jsonl every N steps"),
    _flag("run", "--save-every", type=non_negative_int, default=0, help="also save last.pt every N steps (0: at epoch ends only)"),
    _flag("run", "--keep", type=non_negative_int, default=3, help="epoch_NNNN.pt checkpoints to keep beside last.pt"),
    _flag("run", "--dry-run", action="store_true", per_run=True, help="one training step and one validation pass, then exit; nothing is kept"),
)


def add_train_flags(parser, options_of=lambda flag: flag.options, flags=TRAIN_FLAGS):
    """Add `flags` to `parser` in their groups; `options_of(flag)` gives each one's add_argument options."""
    groups = {}
    for flag in flags:
        if flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group)
        groups[flag.group].add_argument(*flag.names, **options_of(flag))


def default_flags():
    """{dest: default} of every train flag: the config of a bare `train`."""
    parser = argparse.ArgumentParser(add_help=False)
    add_train_flags(parser)
    return vars(parser.parse_args([]))


def explicit_flags(argv):
    """The destinations of the train flags typed in `argv` (defaults left out): they override a resumed config."""
    parser = argparse.ArgumentParser(add_help=False)
    add_train_flags(parser)
    unset = object()  # argparse fills in defaults only for attributes the namespace lacks
    namespace = argparse.Namespace(**{dest: unset for dest in vars(parser.parse_args([]))})
    return {dest for dest, value in vars(parser.parse_args(argv, namespace)).items() if value is not unset}
