"""A checkpoint's header: its plain numbers (step, epoch, scores, the data it was trained on) as
JSON beside the checkpoint file, for tools that load no weights (`runs`). After a kill it can lag
one save behind its checkpoint.

    read_header(RunFolder("checkpoints/unet_sample").last)    # -> {"step": 120, "epoch": 3, ...}
"""
import json
from pathlib import Path

from utils.fsio import write_json_atomic

SHOWN_WHOLE = ("scores", "dataset")  # the dict-valued fields a header keeps


def header_of(checkpoint):
    return Path(checkpoint).with_suffix(".json")


def write_header(checkpoint, state):
    write_json_atomic(header_of(checkpoint), {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool)) or k in SHOWN_WHOLE})


def read_header(checkpoint):
    """The header of a checkpoint file, or None (no header, or damaged)."""
    try:
        header = json.loads(header_of(checkpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None
