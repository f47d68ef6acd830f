"""The train flags' schema: every flag of `train`, with its type, default, help and group, as data.
train, sweep (which sweeps them), runs (which shows the ones that differ from the defaults) and demo
read it. The built-in networks' own flags come from what each declares beside its class
(networks/declared.py): a flag two generators share, such as --channels, is one flag. A network
from the user's own file takes its arguments as --net-arg NAME=VALUE (--disc-arg for a discriminator).

    parser = argparse.ArgumentParser(); add_train_flags(parser); config = vars(parser.parse_args([]))
"""
import argparse
from dataclasses import dataclass, field

from cli.argtypes import fraction, frame_size, non_negative_float, non_negative_int, positive_float, positive_int
from datasets.sample import SAMPLE_DATA
from networks import DISCRIMINATORS, GENERATORS, discriminator_spec, generator_spec
from networks.registry import ADVERSARIAL_LOSSES, MODES
from networks.declared import declared, dest_of
CONVS = ("3d", "2plus1d")  # networks.layers.CONVS (a test keeps the two equal)


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
    steers: bool = False  # changes how a run is watched or kept, not what it learns (`runs` leaves it out)

    @property
    def dest(self):
        return self.options.get("dest") or dest_of(self.names[-1])

    @property
    def is_switch(self):
        """An on/off flag: --flag (off by default), or --flag / --no-flag (on by default)."""
        return self.options.get("action") in ("store_true", argparse.BooleanOptionalAction)

    @property
    def takes_arguments(self):
        """--net-arg / --disc-arg: NAME=VALUE, repeated, gathered as a dict."""
        return self.options.get("action") is _Arguments

    def switch_argv(self, value):
        """The arguments that set this switch to `value`."""
        name = self.names[-1]
        if self.options.get("action") is argparse.BooleanOptionalAction:
            return [name if value else "--no-" + name[2:]]
        return [name] if value else []


def _flag(group, *names, per_run=False, steers=False, **options):
    return Flag(group, names, options, per_run, steers)


def _declared_flags(group, registry, spec_of):
    """One flag per hyperparameter the built-in networks of `registry` declare; a flag several declare
    alike is one flag, whose help names the networks it is for unless every one has it."""
    users = {}
    for name in registry:
        for hyper in declared(spec_of(name)):
            users.setdefault(hyper.flag, []).append((name, hyper))
    flags = []
    for flag, declaring in users.items():
        first = declaring[0][1]
        shared = len(declaring) == len(registry) and len({h.help for _, h in declaring}) == 1
        help_text = first.help if shared else "; ".join(f"{name}: {h.help}" for name, h in declaring)
        flags.append(_flag(group, flag, help=help_text, **_typed(first)))
    return tuple(flags)


def _spec_type(spec_of):
    """argparse type of a network flag: the text, once it names a built-in or MODULE_OR_FILE:Class."""
    def network(text):
        try:
            spec_of(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return network


class _Arguments(argparse.Action):
    """NAME=VALUE, repeatable, gathered as {NAME: "VALUE"}; typed later, against the network's constructor."""

    def __call__(self, parser, namespace, values, option_string=None):
        name, equals, value = values.partition("=")
        if not equals or not name.strip().isidentifier():
            parser.error(f"argument {option_string}: {values!r} is not NAME=VALUE")
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), name.strip(): value.strip()})


def _typed(hyper):
    """argparse options that take the hyperparameter's default and type."""
    if isinstance(hyper.default, bool):
        return {"action": argparse.BooleanOptionalAction, "default": True} if hyper.default else {"action": "store_true"}
    if isinstance(hyper.default, int):
        return {"type": positive_int if hyper.minimum >= 1 else non_negative_int, "default": hyper.default}
    if isinstance(hyper.default, float):
        return {"type": positive_float if hyper.minimum >= 1 else non_negative_float, "default": hyper.default}
    return {"default": hyper.default}


TRAIN_FLAGS = (
    _flag("data", "--data", default=SAMPLE_DATA,
          help=f"dataset folder from build-dataset ({SAMPLE_DATA} is built from the built-in sample video when missing)"),
    # The new words first; the last name stays the one run folders and config files were written with.
    _flag("data", "--clip-frames", "-pool", "--pool", dest="pool", metavar="FRAMES", type=positive_int, default=9,
          help="frames per training clip (T)"),
    _flag("data", "--stride", "--step", dest="step", metavar="FRAMES", type=positive_int, default=3,
          help="frames between the starts of two training clips"),
    _flag("data", "-batch", "--batch", type=positive_int, default=5, help="clips per step (per process under torchrun)"),
    _flag("data", "--crop", type=frame_size, help="random crop of each training clip, SIDE or WIDTHxHEIGHT (default: whole frames)"),
    _flag("data", "--flip", action="store_true", help="random horizontal flips of training clips"),
    _flag("data", "--mmap", action="store_true", help="memory-map the dataset instead of loading it (for data larger than RAM)"),

    _flag("generator", "-net", "--network", type=_spec_type(generator_spec), default="unet", metavar="NETWORK",
          help=f"generator: {', '.join(sorted(GENERATORS))}, or your own as FILE.py:Class or package.module:Class"),
    _flag("generator", "--net-arg", dest="net_args", action=_Arguments, default={}, metavar="NAME=VALUE",
          help="an argument of your own generator's constructor, typed by its annotation or default; repeat for each "
               "(`train -net FILE.py:Class -h` lists them)"),
    *_declared_flags("generator", GENERATORS, generator_spec),
    _flag("generator", "--residual", choices=["auto", "on", "off"], default="auto",
          help="predict a correction added to the input (identity when untrained); auto: on for the pairs whose input "
               "is a degraded or shifted target (blur, lowres, noise, compress, future); for gray, edges and two videos, "
               "on where the training part's input already scores 20 dB PSNR or more against its target; off in the "
               "unpaired modes"),
    _flag("generator", "--conv", choices=CONVS, default="3d",
          help="3d: full 3x3x3 convolutions; 2plus1d: each factorised into a spatial 1x3x3 and a temporal 3x1x1 one "
               "(fewer FLOPs), in the generator and the discriminator"),
    _flag("discriminator", "--disc", type=_spec_type(discriminator_spec), default="patch", metavar="NETWORK",
          help="discriminator: patch (a conditional 3D PatchGAN), or your own as FILE.py:Class or package.module:Class, "
               "whose forward(input_clip, clip) returns logits"),
    _flag("discriminator", "--disc-arg", dest="disc_args", action=_Arguments, default={}, metavar="NAME=VALUE",
          help="an argument of your own discriminator's constructor; repeat for each"),
    *_declared_flags("discriminator", DISCRIMINATORS, discriminator_spec),

    _flag("losses and optimisation", "--mode", choices=tuple(MODES), default="paired",
          help="; ".join(f"{name}: {entry.summary}" for name, entry in MODES.items())),
    _flag("losses and optimisation", "--gan-loss", choices=tuple(ADVERSARIAL_LOSSES), default="dcgan",
          help="adversarial loss; none trains a plain regression baseline (the unpaired modes take lsgan unless told, "
               "as CycleGAN does)"),
    _flag("losses and optimisation", "--l1", type=non_negative_float, default=100.0, help="weight of the L1 loss to the target"),
    _flag("losses and optimisation", "--mse", type=non_negative_float, default=0.0, help="weight of the squared-error loss to the target"),
    _flag("losses and optimisation", "--cycle", type=non_negative_float, default=10.0,
          help="cycle and recycle modes: weight of the cycle-consistency L1 (A -> B -> A and B -> A -> B), and of "
               "recycle's recurrent and recycle L1 terms"),
    _flag("losses and optimisation", "--identity", type=non_negative_float, default=0.5,
          help="cycle and recycle modes: weight of the identity L1 (each generator given a clip of its own output "
               "domain), as a share of --cycle"),
    _flag("losses and optimisation", "--pool-size", type=non_negative_int, default=50,
          help="cycle and recycle modes: generated clips kept to show the discriminators (Shrivastava et al. 2017; 0: none)"),
    _flag("losses and optimisation", "--temporal", type=non_negative_float, default=10.0,
          help="weight of the short-term temporal loss (Lai et al. 2018): each generated frame against the one before "
               "it warped by the target's optical flow, L1 where the target's motion is visible in both. It needs the "
               "target's flow, which build-dataset stores; left at its default, it is off where there is none (an "
               "unpaired dataset, or one built with --no-flow); 0: off"),
    _flag("losses and optimisation", "--ema", type=fraction, default=0.0, metavar="DECAY",
          help="keep an exponential moving average of the generator's weights with this decay (e.g. 0.999; 0: none); "
               "validation, compare and evaluate use the average"),
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
    _flag("run", "--network-source", metavar="PATH", per_run=True,
          help="with --resume: where your generator's file is now, if it moved (its SHA-256 must still match) (default: where it was)"),
    _flag("run", "--disc-source", metavar="PATH", per_run=True,
          help="with --resume: where your discriminator's file is now, if it moved (default: where it was)"),
    _flag("run", "--allow-changed-network", action="store_true", per_run=True,
          help="with --resume: go on although your network's file changed since the run started (with a warning)"),
    _flag("run", "--device", choices=["auto", "cpu", "cuda"], default="auto", steers=True, help="auto picks CUDA when present"),
    _flag("run", "--amp", **AMP_OPTIONS),
    _flag("run", "--memory-format", **MEMORY_FORMAT_OPTIONS),
    _flag("run", "--deterministic", action="store_true", steers=True,
          help="on CUDA, deterministic algorithms only and no TF32, so that two runs give the same weights bit for bit "
               "(slower; the start says which operations have no deterministic version there). On a CPU runs are "
               "bit for bit anyway"),
    _flag("run", "--prefetch", choices=["auto", "on", "off"], default="auto", steers=True,
          help="prepare the next batch on a thread of its own while a step runs; auto: on CUDA (on a CPU the step "
               "already uses every core)"),
    _flag("run", "--dist-timeout", type=positive_float, default=60.0, metavar="MINUTES", steers=True,
          help="under torchrun: how long the other ranks wait in a collective for the slowest one (rank 0 validates, "
               "writes samples and saves alone)"),
    _flag("run", "--sample-every", type=positive_int, default=1, steers=True, help="validate and write samples every N epochs"),
    _flag("run", "--perceptual-every", type=non_negative_int, default=1, steers=True,
          help="score JOD (ColorVideoVDP) at every Nth validation, at the first and at the last (0: never); "
               "docs/metrics.md says what it costs"),
    _flag("run", "--log-every", type=positive_int, default=10, steers=True, help="write losses to metrics.jsonl every N steps"),
    _flag("run", "--save-every", type=non_negative_int, default=0, steers=True, help="also save last.pt every N steps (0: at epoch ends only)"),
    _flag("run", "--keep", type=non_negative_int, default=3, steers=True, help="epoch_NNNN.pt checkpoints to keep beside last.pt"),
    _flag("run", "--dry-run", action="store_true", per_run=True, help="one training step and one validation pass, then exit; nothing is kept"),
)


def as_typed(flags):
    """{dest: value} of train flags as they would be typed: a switch that is off is --no-NAME (only a
    default-on switch differs by being off), and each of --net-arg's arguments is one NAME=VALUE."""
    names = {flag.dest: flag.names[-1] for flag in TRAIN_FLAGS}
    words = []
    for dest, value in flags.items():
        name = names.get(dest, "--" + dest.replace("_", "-"))
        if isinstance(value, dict):
            words += [f"{name} {key}={item}" for key, item in value.items()]
        elif value is False:
            words.append("--no-" + name[2:])
        else:
            words.append(name + ("" if value is True else f" {value}"))
    return " ".join(words) or "(defaults)"


def flags_in(group):
    return tuple(flag for flag in TRAIN_FLAGS if flag.group == group)


def unshown_flags():
    """The flags that do not change what a run learns: they name it or steer how it is watched and kept."""
    return {flag.dest for flag in TRAIN_FLAGS if flag.per_run or flag.steers}


TYPED = "typed_flags"  # the parsed arguments' set of the train flags typed (a resumed run lays them over its config)


def _note_typed(namespace, dest):
    setattr(namespace, TYPED, getattr(namespace, TYPED, set()) | {dest})


class _Store(argparse.Action):
    """argparse's 'store' that also notes its flag as typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note_typed(namespace, self.dest)


class _StoreTrue(_Store):
    """argparse's 'store_true' that also notes its flag as typed."""

    def __init__(self, option_strings, dest, default=False, required=False, help=None):
        super().__init__(option_strings, dest, nargs=0, const=True, default=default, required=required, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, True, option_string)


class _Switch(argparse.BooleanOptionalAction):
    """--flag / --no-flag that also notes its flag as typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_typed(namespace, self.dest)


class _NotedArguments(_Arguments):
    """--net-arg / --disc-arg that also notes its flag as typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_typed(namespace, self.dest)


NOTING = {None: _Store, "store_true": _StoreTrue, argparse.BooleanOptionalAction: _Switch, _Arguments: _NotedArguments}


def noting_typed(flag):
    """add_argument options of a train flag whose action also notes, in the parsed arguments' TYPED
    set, that it was typed: which flags were typed is known from the one parse of the command line."""
    options = dict(flag.options)
    options["action"] = NOTING[options.get("action")]
    return options


def add_train_flags(parser, options_of=noting_typed, flags=TRAIN_FLAGS):
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
    return {dest: value for dest, value in vars(parser.parse_args([])).items() if dest != TYPED}


def typed_flags(args):
    """The train flags typed on the command line that `args` was parsed from."""
    return getattr(args, TYPED, set())
