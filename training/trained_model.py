"""Trained generators out of checkpoints, for compare and evaluate, rebuilt as the run's mode
(training/modes.py) built them. An unpaired run (--mode cycle or recycle) holds a generator each
way: the one of the `direction` asked translates, and the other brings its output back.

    model = load_model("checkpoints/unet_sample", torch.device("cpu")); model.clip_frames, model.size, model.pair
    model = load_model("checkpoints/unet_day_night", device, direction="BtoA"); model.generator, model.back
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from networks import GENERATORS, generator_spec
from networks.registry import MODES
from networks.plugin import verified_source
from runfolder.checkpoint import load_checkpoint, resolve_checkpoint
from runfolder.layout import CheckpointsRoot
from training.run_spec import saved_run_spec
from utils.errors import CheckpointError, UserError
from utils.size import Size


@dataclass(frozen=True)
class TrainedModel:
    """A generator in eval mode and the checkpoint it came from."""

    generator: object
    state: dict
    path: str
    averaged: bool = False  # the generator holds the run's average of the weights (--ema)
    back: object = None  # an unpaired run's generator the other way, which brings the output back
    direction: str | None = None  # an unpaired run's: "AtoB" or "BtoA"

    @property
    def unpaired(self):
        return self.back is not None

    def going_back(self):
        """This model as its generator back (for an unpaired run): to plan and time that one too."""
        return dataclasses.replace(self, generator=self.back, back=self.generator)

    @property
    def step(self):
        return self.state["step"]

    @property
    def clip_frames(self):
        """The frames of the clips it was trained on (-pool)."""
        return self.state["config"]["pool"]

    @property
    def size(self):
        """The frame size it was trained at."""
        trained = self.state["dataset"]
        return Size(trained["width"], trained["height"])

    @property
    def pair(self):
        """The dataset's pair: a derived pair's name, or datasets.pairs.TWO_VIDEOS ("paired") for two videos."""
        return self.state["dataset"]["pair"]

    @property
    def data(self):
        return self.state["config"]["data"]

    @property
    def identity(self):
        """What makes this generator the one it is, for the compute cache's keys: its network, its
        arguments and, for a plug-in, its file's SHA-256 (an edited file is measured again)."""
        record = self.state["sources"]["generator"]
        return {"network": self.state["network"], "generator": self.state["model_args"], "source": record and record["sha256"]}

    def describe(self):
        return {"checkpoint": self.path, "step": self.step, "weights": "average (--ema)" if self.averaged else "trained",
                **({"direction": self.direction} if self.unpaired else {})}


def latest_experiment(root="checkpoints"):
    """The experiment folder under `root` whose last.pt was written most recently."""
    latest = CheckpointsRoot(root).latest()
    if latest is None:
        raise CheckpointError(root, "holds no trained experiment; train one first or pass --checkpoint")
    return latest.path


def load_model(checkpoint, device, network_source=None, allow_changed_network=False, average=True, direction="AtoB"):
    """The TrainedModel of a checkpoint (a .pt file or an experiment folder), on `device`: with the
    average of its weights when the run kept one (--ema) and `average`, else the trained weights.
    Weights that do not fit are refused. A generator from the user's file is imported from the file the
    run recorded (or `network_source`, where it moved) only while its SHA-256 is the recorded one,
    unless `allow_changed_network`. An unpaired run's translates in `direction` ("AtoB" or "BtoA")."""
    if Path(checkpoint).suffix == ".safetensors":
        return load_safetensors(checkpoint, device, network_source, allow_changed_network)
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    try:
        network = generator_spec(state["network"])
    except ValueError:
        raise CheckpointError(path, f"holds an unknown network {state['network']!r}; known: {', '.join(sorted(GENERATORS))}") from None
    record = state["sources"]["generator"]
    if not network.builtin and record is None:
        raise CheckpointError(path, f"holds a network from {network.module} but no record of that file's hash; train it again")
    if state["config"].get("mode") not in MODES:
        raise CheckpointError(path, f"was trained in a mode this vgan does not know ({state['config'].get('mode')!r}; it knows "
                                    f"{', '.join(MODES)}); use the vgan that trained it")
    spec = verified_spec(state, network_source, allow_changed_network)
    mode = spec.mode.load()
    try:
        generator = mode.generator(lambda: spec.build_generator("cpu"))
        averaged = average and state.get("ema") is not None
        generator.load_state_dict(state["ema"] if averaged else state["generator"])
    except (TypeError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise CheckpointError(path, f"its weights do not fit a {state['network']} with {state['model_args']} ({reason})") from None
    forward, back = mode.directions(generator, direction)
    if back is None:
        return TrainedModel(forward.to(device).eval(), state, str(path), averaged)
    return TrainedModel(forward.to(device).eval(), state, str(path), averaged, back.to(device).eval(), direction)


def verified_spec(state, network_source=None, allow_changed_network=False):
    """The RunSpec a checkpoint (or an exported file's record) describes, a plug-in generator's file
    verified by its SHA-256 (found where it was recorded, or at `network_source`)."""
    record = state["sources"]["generator"]
    source = verified_source(record, network_source, allow_changed_network) if record else None
    return saved_run_spec(state, {**record, "file": str(source)} if record else None)


def load_safetensors(path, device, network_source=None, allow_changed_network=False):
    """The TrainedModel of a generator `export --format safetensors` wrote: its network rebuilt from
    the record in the file's metadata (a plug-in's file verified by its SHA-256), its tensors loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    from inference.export import exported_state, read_record

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(path, f"is not a safetensors file vgan can read ({str(exc).splitlines()[0][:160]})") from None
    state = exported_state(read_record(metadata, path))
    generator = verified_spec(state, network_source, allow_changed_network).build_generator("cpu")
    try:
        generator.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(path, f"its tensors do not fit a {state['network']} with {state['model_args']} ({str(exc).splitlines()[0][:160]})") from None
    return TrainedModel(generator.to(device).eval(), state, str(path), state["averaged"])


def load_onnx(path):
    """The TrainedModel of a generator `export` wrote as ONNX, run by ONNX Runtime on the CPU."""
    from inference.export import exported_state
    from inference.onnx_runtime import OnnxGenerator, open_onnx

    session, record = open_onnx(path)
    state = exported_state(record)
    return TrainedModel(OnnxGenerator(session, record).eval(), state, str(path), state["averaged"])
