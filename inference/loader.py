"""Trained generators out of checkpoints, for compare and evaluate.

    generator, state = load_generator("checkpoints/unet_sample", torch.device("cpu"))
"""
from pathlib import Path

from networks import GENERATORS, build_generator
from utils.checkpoint import load_checkpoint, resolve_checkpoint
from utils.errors import CheckpointError


def latest_experiment(root="checkpoints"):
    """The experiment folder under `root` whose last.pt was written most recently."""
    runs = sorted(Path(root).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError(root, "holds no trained experiment; train one first or pass --checkpoint")
    return runs[-1].parent


def load_generator(checkpoint, device):
    """(generator in eval mode on `device`, the checkpoint dict). Weights that do not fit are refused."""
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    if state["network"] not in GENERATORS:
        raise CheckpointError(path, f"holds an unknown network {state['network']!r}; known: {', '.join(sorted(GENERATORS))}")
    try:
        generator = build_generator(state["network"], **state["model_args"])
        generator.load_state_dict(state["generator"])
    except (TypeError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise CheckpointError(path, f"its weights do not fit a {state['network']} with {state['model_args']} ({reason})") from None
    return generator.to(device).eval(), state
