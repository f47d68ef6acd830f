"""Trained generators out of checkpoints, for compare and evaluate.

    model = load_model("checkpoints/unet_sample", torch.device("cpu")); model.pool, model.size, model.pair
"""
from dataclasses import dataclass

from networks import GENERATORS, build_generator
from runfolder.checkpoint import load_checkpoint, resolve_checkpoint
from runfolder.layout import CheckpointsRoot
from utils.errors import CheckpointError
from utils.size import Size


@dataclass(frozen=True)
class TrainedModel:
    """A generator in eval mode and the checkpoint it came from."""

    generator: object
    state: dict
    path: str

    @property
    def step(self):
        return self.state["step"]

    @property
    def pool(self):
        return self.state["config"]["pool"]

    @property
    def size(self):
        """The frame size it was trained at."""
        trained = self.state["dataset"]
        return Size(trained["width"], trained["height"])

    @property
    def pair(self):
        """The dataset's pair: a derived pair's name, or "paired" for two videos."""
        return self.state["dataset"]["pair"]

    @property
    def data(self):
        return self.state["config"]["data"]

    def describe(self):
        return {"checkpoint": self.path, "step": self.step}


def latest_experiment(root="checkpoints"):
    """The experiment folder under `root` whose last.pt was written most recently."""
    latest = CheckpointsRoot(root).latest()
    if latest is None:
        raise CheckpointError(root, "holds no trained experiment; train one first or pass --checkpoint")
    return latest.path


def load_model(checkpoint, device):
    """The TrainedModel of a checkpoint (a .pt file or an experiment folder), on `device`. Weights
    that do not fit are refused."""
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
    return TrainedModel(generator.to(device).eval(), state, str(path))
