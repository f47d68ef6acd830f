"""What the train flags make of a run's networks: the generator's and the discriminator's keyword
arguments, the flags that shape them (which `--resume` may not change), the decision of
`--residual auto`, and where the default temporal loss applies. A built-in network's come from
what it declares beside its class (networks/declared.py), a plug-in's from --net-arg (--disc-arg).

    generator_args(config)    # -> {"channels": 16, "depth": 4, "temporal_pool": False, "conv": "3d", "residual": True}
"""
import numpy as np

from datasets.flow import has_flow
from datasets.pairs import TWO_VIDEOS, parse_pair
from networks import discriminator_spec, generator_spec, has_adversary
from networks.declared import constructor_defaults, declared
from metrics.scores import mean_psnr
from networks.plugin import sha256_of, source_record, verified_source

RESIDUAL_MIN_IDENTITY_PSNR = 20.0  # dB: an input this close to its target is a rough answer, worth correcting


def generator_flags(network):
    """The flags that shape the generator `network`: its declared ones (or --net-arg for a plug-in),
    then --conv when it takes one and --residual, which wraps any generator."""
    spec = generator_spec(network)
    own = [h.dest for h in declared(spec)] if spec.builtin else ["net_args"]
    return own + (["conv"] if "conv" in constructor_defaults(spec) else []) + ["residual"]


def generator_args(config):
    """The generator's keyword hyperparameters, from the train flags."""
    spec = generator_spec(config["network"])
    args = {h.argument: config[h.dest] for h in declared(spec)} if spec.builtin else dict(config.get("net_args") or {})
    if "conv" in constructor_defaults(spec):
        args["conv"] = config["conv"]
    return {**args, "residual": config["residual"] == "on"}


def discriminator_flags(config):
    """The flags that shape the discriminator: --disc, its declared ones (or --disc-arg for a
    plug-in), and --conv when it takes one."""
    spec = discriminator_spec(config.get("disc", "patch"))
    own = [h.dest for h in declared(spec)] if spec.builtin else ["disc_args"]
    return ["disc", *own] + (["conv"] if "conv" in constructor_defaults(spec) else [])


def resolve_residual(config, meta, identity_psnr):
    """(config with --residual auto decided as on or off, the reason). `identity_psnr`: the PSNR of
    the training part's input against its target, in dB. A pair whose input is a degraded or
    shifted target (blur, lowres, noise, compress, future) is always residual; for any other pair
    (gray, edges, two videos) the data decides: residual when the input already scores at least
    RESIDUAL_MIN_IDENTITY_PSNR against its target, as gray footage of natural colours does
    (the gray of saturated synthetic colours, or edges, do not)."""
    if config.get("residual", "auto") != "auto":
        return config, "as asked"
    if meta.get("unpaired"):  # at the identity the cycle and identity L1 terms are at their (non-smooth) minimum: it stays there
        return {**config, "residual": "off"}, "auto: a residual generator starts at the identity, where the cycle and identity losses hold it"
    pair = meta.get("pair", TWO_VIDEOS)
    if pair != TWO_VIDEOS and parse_pair(pair).same_domain:
        return {**config, "residual": "on"}, f"auto: the {pair} pair's input is a degraded or shifted target"
    close = identity_psnr >= RESIDUAL_MIN_IDENTITY_PSNR
    what = "the input" if pair == TWO_VIDEOS else f"the {pair} pair's input"
    reason = (f"{what} already scores {identity_psnr:.1f} dB PSNR against the target on the training part, "
              f"{'at least' if close else 'under'} {RESIDUAL_MIN_IDENTITY_PSNR:g} dB")
    return {**config, "residual": "on" if close else "off"}, "auto: " + reason


def identity_psnr(dataset, most=512):
    """PSNR (dB) of the training part's input taken as the answer: from meta.json, or measured on at
    most `most` frames spread over it (datasets built before build-dataset recorded it)."""
    recorded = (dataset.meta.get("identity_psnr") or {}).get("train")
    if recorded is not None or dataset.unpaired:  # no pairs, no identity score
        return recorded
    frames = np.concatenate([np.arange(start, stop) for start, stop in dataset.ranges("train")])
    frames = frames[np.linspace(0, len(frames) - 1, min(most, len(frames))).astype(int)] if len(frames) else frames
    return mean_psnr(dataset.a[frames], dataset.b[frames]) if len(frames) else 0.0


def resolve_temporal(config, dataset, asked):
    """(config with the temporal loss's weight as it applies, the reason). The default weight needs
    the target's stored flow: on an unpaired dataset, or one without flow, it is off. A weight that
    was `asked` (typed, or a resumed run's own) stands; where it cannot apply it is refused later."""
    weight = config["temporal"]
    if asked or not weight:
        return config, "as asked" if weight else "off"
    if dataset.unpaired:
        return {**config, "temporal": 0.0}, "off: an unpaired dataset has no target whose motion it could follow"
    if not has_flow(dataset.path):
        return {**config, "temporal": 0.0}, (f"off: {dataset.path} holds no optical flow; "
                                             f"`python main.py build-dataset --add-flow {dataset.path}` adds it")
    return config, "the default, on the target's stored flow"


def discriminator_args(config):
    """The discriminator's keyword hyperparameters, or None when there is no adversarial loss."""
    if not has_adversary(config["gan_loss"]):
        return None
    spec = discriminator_spec(config.get("disc", "patch"))
    args = {h.argument: config[h.dest] for h in declared(spec)} if spec.builtin else dict(config.get("disc_args") or {})
    if "conv" in constructor_defaults(spec):
        args["conv"] = config["conv"]
    return args


def architecture(config):
    """{flag: value} of every flag that shapes this config's networks."""
    names = ["mode", "network", "gan_loss", *generator_flags(config["network"])]
    if has_adversary(config["gan_loss"]):
        names += discriminator_flags(config)
    return {name: config.get(name) for name in dict.fromkeys(names)}


def network_sources(config, saved=None):
    """{"generator": record, "discriminator": record}: for each network from the user's own file
    (None for a built-in, and for the discriminator of a run without one) its spec, file and
    SHA-256. A new run hashes the files now; a resumed run (`saved`: the checkpoint's records)
    goes on only with the recorded files, verified (--network-source and --disc-source say where
    they moved, --allow-changed-network accepts a changed one)."""
    roles = {"generator": (generator_spec(config["network"]), config.get("network_source"))}
    if has_adversary(config["gan_loss"]):
        roles["discriminator"] = (discriminator_spec(config.get("disc", "patch")), config.get("disc_source"))
    sources = {"generator": None, "discriminator": None}
    for role, (spec, moved_to) in roles.items():
        record = (saved or {}).get(role)
        if record is None:
            sources[role] = source_record(spec)
        else:
            path = verified_source(record, moved_to, config.get("allow_changed_network", False))
            sources[role] = {**record, "file": str(path), "sha256": sha256_of(path)}
    return sources
