"""Checkpoints as plain data: written atomically, read with `torch.load(weights_only=True)` only.

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
from pathlib import Path

from utils.errors import CheckpointError
from utils.fsio import temp_name, write_json_atomic

VERSION = 1
LAST_NAME = "last.pt"  # the checkpoint an experiment folder means
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


def save_checkpoint(state, path):
    """Write `state` to a temporary file beside `path`, flush it to disk, then rename it into place;
    then its header (the plain numbers, e.g. step and scores) beside it as JSON, for tools that
    should not load weights (`runs`). After a kill the header can lag one save behind."""
    import torch  # here, not at import: `runs` reads headers without loading torch

    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            gate = os.environ.get(HOLD_WRITE_ENV)
            torch.save(state, _HeldWrites(f, gate) if gate and Path(gate).exists() else f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    header = {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool)) or k in ("scores", "dataset")}
    write_json_atomic(header_path(path), header)


def header_path(path):
    return Path(path).with_suffix(".json")


def read_header(path):
    """The JSON header of a checkpoint file, or None (no header, or damaged)."""
    try:
        header = json.loads(header_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def resolve_checkpoint(path):
    """A .pt file as given, or an experiment folder's last.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST_NAME
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint; give a .pt file or an experiment folder under checkpoints/")
    return path


def load_checkpoint(path, map_location="cpu"):
    """Load and check a vgan checkpoint. Files that hold code, are damaged, or are not ours are refused."""
    import torch

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
    return state
