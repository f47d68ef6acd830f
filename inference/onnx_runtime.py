"""An exported ONNX generator (inference/export.py) run by ONNX Runtime through compare's windows,
blending and tiles: a torch module on the outside, so that the sliding windows and the tiles run
it as they run a PyTorch network; ONNX Runtime's CPU provider on the inside.

    session, record = open_onnx("model.onnx")                # a one-line error for a file that is not one
    generate = onnx_clip_generator(OnnxGenerator(session, record), "model.onnx", clip_shape=(4, 9, 64, 64))
"""
import json

import torch

from inference.generate import ClipGenerator, default_budget, plan
from inference.tiles import Tiling, fit_tiling
from inference.export import read_record
from utils.errors import UserError

INSTALL = "pip install onnxruntime"


class OnnxGenerator(torch.nn.Module):
    """(N, 3, T, H, W) in [-1, 1] -> the same, computed by an ONNX Runtime session (float32, CPU)."""

    def __init__(self, session, record):
        super().__init__()
        self.session, self.record = session, record
        self.input_name = session.get_inputs()[0].name

    @property
    def size_multiple(self):
        return int(self.record["size_multiple"])

    def forward(self, x):
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    def __str__(self):
        return f"ONNX model of {self.record['network']}"


def open_onnx(path):
    """(ONNX Runtime's session of `path`, its vgan record {key: text}); one line for a missing
    onnxruntime, a file that is not ONNX, one without vgan's record, or an input that is not a clip."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--backend onnxruntime", f"needs ONNX Runtime, which is not installed here: {INSTALL}") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types, one per kind of damage
        raise UserError(path, f"is not an ONNX model ONNX Runtime can load ({str(exc).splitlines()[0][:160]})") from None
    record = read_record(session.get_modelmeta().custom_metadata_map, path)
    shape = session.get_inputs()[0].shape
    if len(shape) != 5 or shape[1] != 3:
        raise UserError(path, f"takes input of shape {shape}, not clips (N, 3, T, H, W)")
    return session, record


def onnx_clip_generator(network, path, clip_shape, max_memory=None, tile=None):
    """A ClipGenerator of an OnnxGenerator for windows of `clip_shape` (B, T, H, W): whole frames, as
    many windows a pass as `max_memory` holds by the cost PyTorch measured at export; tiles of
    `tile`, or where whole frames do not fit, only for a network that does not normalise over frames."""
    batch, frames, height, width = clip_shape
    record = network.record
    trained = int(record["frames_per_clip"])
    if frames != trained:
        raise UserError(path, f"takes clips of {trained} frames, not {frames}; drop --window or give --window {trained}")
    halo = int(record["halo"]) if record.get("halo") else None
    multiple = network.size_multiple
    if tile is not None:
        tiling = Tiling.aligned(tile, halo or 0, multiple, tiles_per_pass=batch)
        budget = None
    else:
        budget = max_memory or default_budget(torch.device("cpu"))
        tiling, _ = fit_tiling(network, clip_shape, budget, torch.device("cpu"), halo=halo or 0,
                               cost=tuple(json.loads(record["forward_cost"])))
    whole = tiling.covers(height, width)
    if not whole and (record.get("normalises_frames") == "true" or halo is None):
        why = "normalises over whole frames (instance norm)" if halo is not None else "sees the whole frame"
        raise UserError(path, f"its network {why}, which tiles cannot share in ONNX Runtime; {width}x{height} frames need tiles "
                              f"here: raise --max-memory, lower --batch or --size, or run the checkpoint with the torch backend")
    words = f"{plan(tiling, clip_shape, budget)}; ONNX Runtime, float32, CPU"
    return ClipGenerator(network, torch.device("cpu"), note="ONNX Runtime", tiling=None if whole and tiling.tiles_per_pass >= batch
                         else tiling, plan=words)
