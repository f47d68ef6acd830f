"""An experiment folder: its config, its checkpoints (last.pt and kept epoch_NNNN.pt), and the rules
for resuming it.

    checkpoints/unet_sample/{config.json, last.pt, epoch_0003.pt, metrics.jsonl, samples/, lock, events...}
"""
import os
import shutil
from pathlib import Path

from utils.checkpoint import LAST_NAME, save_checkpoint
from utils.errors import CheckpointError
from utils.fsio import temp_name, write_json_atomic

CONFIG_NAME = "config.json"

# Flags that shape the networks; a run cannot be resumed with other values.
GENERATOR_FLAGS = {"unet": ("channels", "depth", "temporal_pool", "conv", "residual"),
                   "resnet": ("channels", "blocks", "downsample", "se", "conv", "residual")}
RESIDUAL_MIN_IDENTITY_PSNR = 20.0  # dB: an input this close to its target is a rough answer, worth correcting
DISCRIMINATOR_FLAGS = ("d_channels", "d_layers", "spectral_norm", "conv")


def experiment_folder(config):
    return Path(config["checkpoints"]) / config["name"]


def generator_args(config):
    """The generator's keyword hyperparameters, from the train flags."""
    # Runs from before these flags existed trained full 3D convolutions and no global skip.
    common = {"conv": config.get("conv", "3d"), "residual": config.get("residual", "off") == "on"}
    if config["network"] == "unet":
        return {"channels": config["channels"], "depth": config["depth"], "temporal_pool": config["temporal_pool"], **common}
    return {"channels": config["channels"], "blocks": config["blocks"], "downsample": config["downsample"],
            "squeeze_excite": config["se"], **common}


def resolve_residual(config, meta, identity_psnr):
    """(config with --residual auto decided as on or off, the reason). `identity_psnr`: the PSNR of
    the training part's input against its target, in dB. A pair whose input is a degraded or
    shifted target (blur, lowres, noise, compress, future) is always residual; for any other pair
    (gray, edges, two videos) the data decides: residual when the input already scores at least
    RESIDUAL_MIN_IDENTITY_PSNR against its target, as gray footage of natural colours does
    (the gray of saturated synthetic colours, or edges, do not)."""
    from datasets.pairs import parse_pair  # here: `runs` reads this module's names without OpenCV

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
    return {"channels": config["d_channels"], "layers": config["d_layers"], "spectral_norm": config["spectral_norm"],
            "conv": config.get("conv", "3d")}


def architecture(config):
    """{flag: value} of every flag that shapes this config's networks."""
    names = ["network", "gan_loss", *GENERATOR_FLAGS[config["network"]]]
    if config["gan_loss"] != "none":
        names += DISCRIMINATOR_FLAGS
    earlier = {"conv": "3d", "residual": "off"}  # what runs from before these flags trained
    return {name: config.get(name, earlier.get(name)) for name in dict.fromkeys(names)}


def resumed_config(saved, current, explicit, checkpoint_path):
    """The config a resumed run uses: the saved one, with the flags typed this time laid over it.

    Typed flags that would change the networks are refused, naming them."""
    merged = dict(saved)
    merged.update({name: current[name] for name in explicit if name in current})
    merged.update(resume=True, name=current["name"], checkpoints=current["checkpoints"])  # where it is now, if it was moved
    changed = [name for name, value in architecture(merged).items() if architecture(saved).get(name) != value]
    changed += [name for name in architecture(saved) if name not in architecture(merged)]
    if changed:
        flags = ", ".join(f"--{n.replace('_', '-')} ({saved.get(n)!r} -> {merged.get(n)!r})" for n in sorted(set(changed)))
        raise CheckpointError(checkpoint_path, f"was trained with other network flags: {flags}; drop them to resume, "
                                               f"or start a new run with another --name")
    return merged


def write_config(folder, config):
    write_json_atomic(Path(folder) / CONFIG_NAME, config)


def save_state(folder, state, epoch_file, keep):
    """Write last.pt; at an epoch's end also keep it as epoch_NNNN.pt (a hard link, not a second
    copy) and delete the oldest epoch files beyond `keep`."""
    folder = Path(folder)
    last = folder / LAST_NAME
    save_checkpoint(state, last)
    if not epoch_file:
        return
    if keep > 0:
        target = folder / f"epoch_{state['epoch']:04d}.pt"
        tmp = temp_name(target)
        tmp.unlink(missing_ok=True)
        try:
            os.link(last, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(last, tmp)
        os.replace(tmp, target)
    for old in sorted(folder.glob("epoch_*.pt"))[:-keep or None]:
        old.unlink(missing_ok=True)
