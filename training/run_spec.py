"""What one run is, worked out once: a frozen, typed record built from the train flags (typed, from
a --config file, or a resumed run's config.json under the typed ones), the decisions the data
makes (--residual auto, the default temporal loss) and the plug-in files verified against the
checkpoint. Everything that trains, times, saves or loads a run reads this record; config.json
stays its form on disk (`flags`), so run folders of any vgan version load as they are.

    spec, notes = run_spec_on(config, dataset, state, temporal_asked)   # once, when the run is built
    spec = saved_run_spec(state, source)      # compare's and evaluate's: as the checkpoint describes it
    spec.build_generator(device)              # the network, from its parsed spec and arguments
    spec.mode.load().new_train_step(...)      # the mode's code, imported now
"""
import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

from networks import build_discriminator, build_generator, discriminator_spec, generator_spec
from networks.registry import ADVERSARIAL_LOSSES, MODES, LossEntry, ModeEntry
from networks.declared import constructor_defaults
from networks.plugin import NetworkSpec
from training.from_flags import discriminator_args, generator_args, identity_psnr, network_sources, resolve_residual, resolve_temporal
from training.step import LossWeights


@dataclass(frozen=True)
class NetworkChoice:
    """One network of a run: where its class is (parsed once), its keyword arguments, and for a
    plug-in the verified record of its file (spec, file, SHA-256; None for a built-in)."""

    spec: NetworkSpec
    args: MappingProxyType
    source: MappingProxyType | None = None

    @property
    def file(self):
        """The file a plug-in is imported from, or None for a built-in."""
        return self.source["file"] if self.source else None

    @property
    def takes_in_channels(self):
        return "in_channels" in constructor_defaults(self.spec)


@dataclass(frozen=True)
class RunSpec:
    flags: MappingProxyType  # every train flag, as config.json holds them
    mode: ModeEntry
    gan_loss: LossEntry
    generator: NetworkChoice
    discriminator: NetworkChoice | None  # None without an adversarial loss
    clip_frames: int  # frames per training clip (--clip-frames)
    stride: int  # frames between one training clip's start and the next's (--stride)
    compute: tuple  # (--amp, --memory-format) as asked: "auto" is measured when the networks exist
    weights: LossWeights

    @property
    def config(self):
        """The flags as a plain dict, as config.json and the checkpoint hold them."""
        return dict(self.flags)

    def described(self):
        """What a checkpoint keeps to describe the run: its flags, the networks' arguments and the plug-ins' records."""
        return {"config": self.config, "model_args": dict(self.generator.args),
                "disc_args": dict(self.discriminator.args) if self.discriminator else None,
                "sources": {"generator": self.generator.source and dict(self.generator.source),
                            "discriminator": self.discriminator and self.discriminator.source and dict(self.discriminator.source)}}

    def build_generator(self, device):
        return build_generator(self.generator.spec, source=self.generator.file, **self.generator.args).to(device)

    def build_discriminator(self, device, in_channels):
        """A discriminator of clips with `in_channels` channels (a conditional one sees input and clip
        together), or None without an adversarial loss."""
        if self.discriminator is None:
            return None
        args = {**self.discriminator.args, **({"in_channels": in_channels} if self.discriminator.takes_in_channels else {})}
        return build_discriminator(self.discriminator.spec, source=self.discriminator.file, **args).to(device)


def frozen(mapping):
    return MappingProxyType(dict(mapping)) if mapping is not None else None


def run_spec(config, sources=None):
    """The RunSpec of `config` (the train flags, --residual and the temporal weight decided) with the
    plug-ins' verified `sources` ({"generator": record, "discriminator": record}, None for a built-in)."""
    sources = sources or {}
    d_args = discriminator_args(config)
    return RunSpec(
        flags=frozen(config), mode=MODES[config["mode"]], gan_loss=ADVERSARIAL_LOSSES[config["gan_loss"]],
        generator=NetworkChoice(generator_spec(config["network"]), frozen(generator_args(config)), frozen(sources.get("generator"))),
        discriminator=None if d_args is None else NetworkChoice(discriminator_spec(config.get("disc", "patch")), frozen(d_args),
                                                                frozen(sources.get("discriminator"))),
        clip_frames=config["pool"], stride=config["step"], compute=(config["amp"], config["memory_format"]),
        weights=LossWeights.from_config(config))


def run_spec_on(config, dataset, state, temporal_asked):
    """(the RunSpec of a run about to train on `dataset`, {"residual": why, "temporal": why}): the
    flags' --residual auto and default temporal weight decided by the data, and the plug-ins'
    files hashed, or verified against the checkpoint `state` of a resumed run."""
    config, temporal = resolve_temporal(config, dataset, asked=temporal_asked)
    config, residual = resolve_residual(config, dataset.meta, identity_psnr(dataset))
    sources = network_sources(config, state.get("sources") if state is not None else None)
    return run_spec(config, sources), {"residual": residual, "temporal": temporal}


def saved_run_spec(state, generator_source=None):
    """The RunSpec a loaded checkpoint `state` describes: its config, and its networks' arguments as
    they were saved (never worked out again by today's rules); `generator_source`, a plug-in's
    verified record. Raises KeyError for a mode, loss or network this vgan does not know, ValueError
    for a network that is no spec."""
    config = state["config"]
    d_args = state.get("disc_args")
    return RunSpec(
        flags=frozen(config), mode=MODES[config["mode"]], gan_loss=ADVERSARIAL_LOSSES[config.get("gan_loss", "dcgan")],
        generator=NetworkChoice(generator_spec(state["network"]), frozen(state["model_args"]), frozen(generator_source)),
        discriminator=None if d_args is None else NetworkChoice(discriminator_spec(config.get("disc", "patch")), frozen(d_args)),
        clip_frames=config["pool"], stride=config.get("step", 1), compute=(config.get("amp", "off"), config.get("memory_format", "contiguous")),
        weights=saved_weights(config))


def saved_weights(config):
    """The loss weights a saved config trained with: its own, those of runs saved before a weight
    existed, and the defaults for any a checkpoint written by other tools does not name."""
    values = {**LossWeights.before_they_existed(), **config}
    return LossWeights(**{f.name: values[LossWeights.flag(f.name)] for f in dataclasses.fields(LossWeights)
                          if LossWeights.flag(f.name) in values})
