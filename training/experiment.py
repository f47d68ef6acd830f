"""What the train flags make of the networks: the generator's and the discriminator's keyword
arguments, the flags that shape them (which `--resume` may not change), and the decision of
`--residual auto`. The generator's come from what it declares beside its class
(networks/declared.py), the discriminator's from the schema's discriminator group.

    generator_args(config)    # -> {"channels": 16, "depth": 4, "temporal_pool": False, "conv": "3d", "residual": True}
"""
from cli.train_flags import flags_in
from datasets.pairs import parse_pair
from networks.declared import constructor_defaults, declared

RESIDUAL_MIN_IDENTITY_PSNR = 20.0  # dB: an input this close to its target is a rough answer, worth correcting


def generator_flags(network):
    """The flags that shape the generator `network`: its declared ones, then --conv when it takes
    one and --residual, which wraps any generator."""
    takes_conv = "conv" in constructor_defaults(network)
    return [h.dest for h in declared(network)] + (["conv"] if takes_conv else []) + ["residual"]


def generator_args(config):
    """The generator's keyword hyperparameters, from the train flags."""
    args = {h.argument: config[h.dest] for h in declared(config["network"])}
    if "conv" in constructor_defaults(config["network"]):
        args["conv"] = config["conv"]
    return {**args, "residual": config["residual"] == "on"}


def discriminator_flags():
    """The flags that shape the discriminator: its group in the schema, and --conv."""
    return [flag.dest for flag in flags_in("discriminator")] + ["conv"]


def resolve_residual(config, meta, identity_psnr):
    """(config with --residual auto decided as on or off, the reason). `identity_psnr`: the PSNR of
    the training part's input against its target, in dB. A pair whose input is a degraded or
    shifted target (blur, lowres, noise, compress, future) is always residual; for any other pair
    (gray, edges, two videos) the data decides: residual when the input already scores at least
    RESIDUAL_MIN_IDENTITY_PSNR against its target, as gray footage of natural colours does
    (the gray of saturated synthetic colours, or edges, do not)."""
    if config.get("residual", "auto") != "auto":
        return config, "as asked"
    pair = meta.get("pair", "paired")
    if pair != "paired" and parse_pair(pair).same_domain:
        return {**config, "residual": "on"}, f"auto: the {pair} pair's input is a degraded or shifted target"
    close = identity_psnr >= RESIDUAL_MIN_IDENTITY_PSNR
    what = "the input" if pair == "paired" else f"the {pair} pair's input"
    reason = (f"{what} already scores {identity_psnr:.1f} dB PSNR against the target on the training part, "
              f"{'at least' if close else 'under'} {RESIDUAL_MIN_IDENTITY_PSNR:g} dB")
    return {**config, "residual": "on" if close else "off"}, "auto: " + reason


def discriminator_args(config):
    """The discriminator's keyword hyperparameters, or None when there is no adversarial loss."""
    if config["gan_loss"] == "none":
        return None
    return {name.removeprefix("d_"): config[name] for name in discriminator_flags()}  # --d-channels sets its channels


def architecture(config):
    """{flag: value} of every flag that shapes this config's networks."""
    names = ["network", "gan_loss", *generator_flags(config["network"])]
    if config["gan_loss"] != "none":
        names += discriminator_flags()
    return {name: config.get(name) for name in dict.fromkeys(names)}
