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
GENERATOR_FLAGS = {"unet": ("channels", "depth", "temporal_pool", "conv"), "resnet": ("channels", "blocks", "downsample", "se", "conv")}
DISCRIMINATOR_FLAGS = ("d_channels", "d_layers", "spectral_norm", "conv")


def experiment_folder(config):
    return Path(config["checkpoints"]) / config["name"]


def generator_args(config):
    """The generator's keyword hyperparameters, from the train flags."""
    conv = config.get("conv", "3d")  # runs from before the flag existed trained full 3D convolutions
    if config["network"] == "unet":
        return {"channels": config["channels"], "depth": config["depth"], "temporal_pool": config["temporal_pool"], "conv": conv}
    return {"channels": config["channels"], "blocks": config["blocks"], "downsample": config["downsample"],
            "squeeze_excite": config["se"], "conv": conv}


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
    return {name: config.get(name, "3d" if name == "conv" else None) for name in dict.fromkeys(names)}


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
