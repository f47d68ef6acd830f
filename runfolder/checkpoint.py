"""The checkpoint format, in one place: what a checkpoint holds (`build_checkpoint`), how it is
written (atomically, with a JSON header beside it and kept epoch files) and read
(`torch.load(weights_only=True)` only, with the defaults of runs from older versions filled in
once), and how a run is restored from it. The only module of the run folder that imports torch.

A checkpoint is a dict of state_dicts, optimizer states, counters, RNG states and the config as
plain types, so loading never runs code from the file. Example:
    state = load_checkpoint("checkpoints/unet_sample")    # the folder means its last.pt
"""
import json
import os
import pickle
import re
import time
import warnings
import zipfile
import shutil
from pathlib import Path

import torch

from runfolder.header import write_header
from runfolder.layout import RunFolder
from utils.errors import CheckpointError
from utils.fsio import temp_name, writing

VERSION = 1
# What runs from before a flag existed did, for every flag added since that shapes the networks or
# the run: full 3D convolutions, no global skip. (The loss weights' are declared with them: training/step.py.)
OLD_RUN_DEFAULTS = {"conv": "3d", "residual": "off", "net_args": {}, "disc": "patch", "disc_args": {}, "ema": 0.0,
                    "deterministic": False, "prefetch": "auto", "dist_timeout": 60.0, "mode": "paired", "pool_size": 50,
                    "perceptual_every": 1}
OLD_RUN_DATASET = {"pair": None, "width": 64, "height": 64, "fps": None}  # before checkpoints recorded their data
DATASET_KEYS = tuple(OLD_RUN_DATASET)
NO_PLUGINS = {"generator": None, "discriminator": None}
REQUIRED_KEYS = ("generator", "network", "model_args", "config", "step", "version")
# A test hook, for the fault tests alone: while the file this names exists, a checkpoint write stops
# after its first bytes, touches NAME.held and waits, so that a test can kill it mid-write for sure.
HOLD_WRITE_ENV = "VGAN_TEST_HOLD_CHECKPOINT_WRITE"


class _HeldWrites:
    """A file whose first write is followed by a wait while the gate file exists (HOLD_WRITE_ENV)."""

    def __init__(self, file, gate):
        self.file, self.gate, self.held = file, Path(gate), False

    def write(self, data):
        written = self.file.write(data)
        if not self.held:
            self.held = True
            self.file.flush()  # the partial file on disk holds these bytes while the write is held
            Path(f"{self.gate}.held").touch()
            while self.gate.exists():
                time.sleep(0.01)
        return written

    def __getattr__(self, name):
        return getattr(self.file, name)


def build_checkpoint(nets, position, *, described, data, compute, device, finished=False, scores=None, step_state=None):
    """The checkpoint of a run at `position` (step, epoch, epoch_step), as plain data: the unwrapped
    networks' and optimizers' state, the step's own state (`step_state`: the unpaired modes'
    history pools), counters, random state, what describes the run (`described`: its config, the
    networks' arguments and the plug-in files they came from, never their code), the data it was
    trained on (`data`: its fingerprint and meta.json) and how it computed (`compute`: amp, channels_last)."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "generator": nets.raw_generator.state_dict(), "opt_g": nets.opt_g.state_dict(), "scaler": nets.scaler.state_dict(),
        "ema": nets.ema.module.state_dict() if nets.ema is not None else None,
        "discriminator": nets.raw_discriminator.state_dict() if nets.raw_discriminator else None,
        "opt_d": nets.opt_d.state_dict() if nets.opt_d else None,
        "epoch": position.epoch, "epoch_step": position.epoch_step, "step": position.step,
        "network": described["config"]["network"], **plain(described), "rng": rng,
        "dataset_fingerprint": data.fingerprint, "scores": scores or {}, "finished": finished, "version": VERSION,
        "compute": {"amp": compute.amp, "channels_last": compute.channels_last},
        "dataset": {key: data.dataset.meta.get(key) for key in DATASET_KEYS}, "step_state": step_state,
    }


def plain(value):
    """`value` in plain JSON types, as config.json holds it (a Size becomes [width, height]), so
    that a checkpoint loads with weights_only=True."""
    return json.loads(json.dumps(value))


def save_checkpoint(folder, state, keep_epoch=False, keep=0):
    """Write `state` as the folder's last.pt: to a temporary file beside it, flushed to disk, then
    renamed into place; then its header (the plain numbers, e.g. step and scores) beside it as JSON,
    for tools that load no weights (`runs`; after a kill it can lag one save behind). With
    `keep_epoch` (an epoch's end) it is also kept as epoch_NNNN.pt (a hard link, not a second copy)
    and the oldest epoch files beyond `keep` are deleted."""
    folder = RunFolder(folder)
    _write_atomic(state, folder.last)
    write_header(folder.last, state)
    if not keep_epoch:
        return
    if keep > 0:
        target = folder.epoch_checkpoint(state["epoch"])
        tmp = temp_name(target)
        tmp.unlink(missing_ok=True)
        try:
            os.link(folder.last, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(folder.last, tmp)
        os.replace(tmp, target)
    for old in folder.epoch_checkpoints()[:-keep or None]:
        old.unlink(missing_ok=True)


def _write_atomic(state, path):
    tmp = temp_name(path)
    try:
        with writing(path, kept=f"the previous {path.name} is kept as it was"), open(tmp, "wb") as f:
            gate = os.environ.get(HOLD_WRITE_ENV)
            torch.save(state, _HeldWrites(f, gate) if gate and Path(gate).exists() else f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_checkpoint(path):
    """A .pt file as given, or an experiment folder's last.pt."""
    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).last
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint; give a .pt file or an experiment folder under checkpoints/")
    return path


def load_checkpoint(path, map_location="cpu"):
    """Load and check a vgan checkpoint, with the defaults of older runs filled in. Files that hold
    code, are damaged, or are not ours are refused."""
    path = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols; the outcome is what matters
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL (\S+)", str(exc))
        if unsafe:
            raise CheckpointError(path, f"refused: it asks to load {unsafe.group(1)}, which could run code; "
                                        f"only plain-data vgan checkpoints are loaded") from None
        raise CheckpointError(path, "not a PyTorch checkpoint, or damaged; use an older epoch_NNNN.pt or train again") from None
    except (RuntimeError, EOFError, KeyError, IndexError, TypeError, AttributeError, OverflowError, MemoryError,
            zipfile.BadZipFile, OSError, ValueError) as exc:  # what torch's reader raises on damaged bytes
        reason = str(exc).splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"damaged or truncated checkpoint ({reason}); use an older epoch_NNNN.pt or train again") from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(path, "not a vgan checkpoint (it lacks the generator, network or config)")
    if state["version"] > VERSION:
        raise CheckpointError(path, f"written by a newer vgan (format {state['version']}); update vgan to read it")
    state["config"] = {**OLD_RUN_DEFAULTS, **state["config"]}
    state["dataset"] = {**OLD_RUN_DATASET, **(state.get("dataset") or {})}
    state["sources"] = {**NO_PLUGINS, **(state.get("sources") or {})}  # before plug-ins, every network was built in
    return state


def saved_compute(state):
    """(amp, channels_last) the run computed with, or None for runs from before it was recorded."""
    return (state["compute"]["amp"], state["compute"]["channels_last"]) if "compute" in state else None


def saved_position(state):
    """(step, epoch, epoch_step) where the saved run stands."""
    return state["step"], state["epoch"], state["epoch_step"]


def restore_networks(nets, state):
    """The saved weights and optimizer states into `nets` (its raw, unwrapped modules)."""
    nets.raw_generator.load_state_dict(state["generator"])
    nets.opt_g.load_state_dict(state["opt_g"])
    if nets.raw_discriminator is not None:
        nets.raw_discriminator.load_state_dict(state["discriminator"])
        nets.opt_d.load_state_dict(state["opt_d"])
    nets.scaler.load_state_dict(state["scaler"])
    if nets.ema is not None and state.get("ema") is not None:  # else (--ema added on a resume) it starts from the weights
        nets.ema.module.load_state_dict(state["ema"])


def restore_random_state(state, device):
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and "cuda" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
