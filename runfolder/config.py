"""A run's config: config.json, written before step 0 so that the folder explains itself (with a
copy of each plug-in network's file), and the rule for resuming a run with flags typed again.

    config = resumed_config(saved, typed, explicit={"epochs"}, checkpoint=folder.last, architecture=architecture)
"""
from runfolder.layout import RunFolder
from utils.errors import CheckpointError
from utils.fsio import make_folder, read_json, write_bytes_atomic, write_json_atomic


def write_config(folder, config):
    write_json_atomic(RunFolder(folder).config, config)


def write_network_copy(folder, role, record):
    """A copy of the plug-in file `record` names in the folder, for the record (never imported)."""
    copy = RunFolder(folder).network_copy(role, record["file"], record["sha256"])
    if not copy.exists():
        make_folder(copy.parent)
        with open(record["file"], "rb") as f:
            write_bytes_atomic(copy, f.read())


def read_config(folder):
    """The run's config.json as a dict; {} when it is missing or damaged."""
    config = read_json(RunFolder(folder).config)
    return config if isinstance(config, dict) else {}


def resumed_config(saved, current, explicit, checkpoint, architecture):
    """The config a resumed run uses: the saved one, with the flags typed this time (`explicit`)
    laid over it. Typed flags that would change the networks (`architecture(config)`: {flag: value}
    of every flag that shapes them) are refused, naming them."""
    merged = dict(saved)
    merged.update({name: current[name] for name in explicit if name in current})
    merged.update(resume=True, name=current["name"], checkpoints=current["checkpoints"])  # where it is now, if it was moved
    before, after = architecture(saved), architecture(merged)
    changed = sorted({name for name in {*before, *after} if before.get(name) != after.get(name)})
    if changed:
        flags = ", ".join(f"--{n.replace('_', '-')} ({saved.get(n)!r} -> {merged.get(n)!r})" for n in changed)
        raise CheckpointError(checkpoint, f"was trained with other network flags: {flags}; drop them to resume, "
                                          f"or start a new run with another --name")
    return merged
