"""A trained generator out of vgan, for a video pipeline, a machine without PyTorch or a colleague:
ONNX, checked against eager PyTorch with ONNX Runtime before it is kept, or safetensors (the
weights as plain tensors and the run's record as text: nothing in it is code).

The ONNX model takes and gives float32 (N, 3, T, H, W) clips in [-1, 1] (RGB), T the run's clip
frames, H and W any multiples of its size multiple; its metadata says so, and names the run, its
flags and its checkpoint's SHA-256. Both files carry what `load_exported` (training/trained_model.py)
needs to run them again: the network, its arguments, the run's config and its dataset's size and pair.

    difference = export_onnx(model, frames, "model.onnx")        # the largest |ONNX Runtime - PyTorch|
    export_safetensors(model, "model.safetensors")
"""
import contextlib
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from inference.tiles import forward_cost, norm_layers, tiling_halo
from networks.layers import size_multiple
from networks.plugin import sha256_of
from utils.errors import UserError
from utils.fsio import staged_file

PARITY_TOLERANCE = 1e-3  # float32: ONNX Runtime's kernels sum in other orders than PyTorch's, never by this much
PREFIX = "vgan."
FORMAT = "vgan exported generator 1"


def record_of(model):
    """{key: text}: what an exported file says of itself and needs to be run again."""
    state = model.state
    config = {**state["config"], **({"mode": "paired"} if model.unpaired else {})}  # one direction: a translator of its own
    record = {
        "format": FORMAT, "input": "float32 clips (N, 3, T, H, W), RGB, values in [-1, 1]; T = frames_per_clip; H and W "
                                   "multiples of size_multiple",
        "output": "float32 clips of the input's shape, RGB, values in [-1, 1]",
        "value_range": "[-1, 1]", "channel_order": "RGB", "layout": "N,C,T,H,W",
        "frames_per_clip": str(model.clip_frames), "size_multiple": str(size_multiple(model.generator)),
        "run": Path(model.path).parent.name, "checkpoint": model.path, "checkpoint_sha256": sha256_of(model.path),
        "weights": "average (--ema)" if model.averaged else "trained", "direction": model.direction or "",
        "network": state["network"], "model_args": json.dumps(state["model_args"]), "config": json.dumps(config),
        "dataset": json.dumps(state["dataset"]), "sources": json.dumps({"generator": state["sources"]["generator"]}),
        "step": str(state["step"]),
    }
    return {PREFIX + key: value for key, value in record.items()}


def read_record(metadata, path):
    """The vgan record in an exported file's `metadata` ({key: text}), without its prefix; one line
    for a file that holds none (exported by another tool, or stripped)."""
    record = {key[len(PREFIX):]: value for key, value in metadata.items() if key.startswith(PREFIX)}
    if record.get("format") != FORMAT:
        raise UserError(path, "holds no record of the flags its network needs (the vgan run it came from: network, arguments, "
                              f"clip frames); export it with `python main.py export --checkpoint RUN -o {Path(path).name}`")
    return record


def exported_state(record):
    """The parts of a checkpoint an exported file keeps (no weights): what compare reads of its run."""
    return {"network": record["network"], "model_args": json.loads(record["model_args"]), "config": json.loads(record["config"]),
            "dataset": json.loads(record["dataset"]), "sources": json.loads(record["sources"]), "step": int(record["step"]),
            "averaged": record["weights"].startswith("average")}


def tiling_record(generator, frames):
    """What the onnxruntime backend needs to plan windows and tiles without PyTorch's graph: whether
    the network normalises over whole frames (then it runs whole frames only), its receptive radius,
    and the memory its float32 forward pass of `frames` frames takes (fixed bytes, bytes per pixel)."""
    halo = None
    try:
        halo = tiling_halo(generator)
    except UserError:
        pass
    cost = forward_cost(generator, frames, torch.device("cpu"))
    return {PREFIX + "normalises_frames": str(bool(norm_layers(generator))).lower(), PREFIX + "halo": "" if halo is None else str(halo),
            PREFIX + "forward_cost": json.dumps(list(cost))}


def unsupported_operator(exc):
    """The operator an export failed on, from torch.onnx's message, or None."""
    found = re.search(r"(aten::\w+|aten\.\w+(?:\.\w+)?|torch\.ops\.\w+\.\w+)", str(exc))
    return found.group(1) if found else None


def to_onnx(generator, example, path):
    """`generator` (float32, eval, CPU) as ONNX at `path`, with a dynamic batch, height and width
    (the clip's frames stay fixed). Traced on two clips: torch.export takes a dimension of 1 as fixed."""
    from torch.export import Dim

    example = torch.cat([example, example.flip(0)]) if example.shape[0] == 1 else example
    dims = ({0: Dim.DYNAMIC, 3: Dim.DYNAMIC, 4: Dim.DYNAMIC},)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # its progress: vgan says what it did in one line
        warnings.simplefilter("ignore")
        torch.onnx.export(generator, (example,), str(path), dynamo=True, input_names=["clip"], output_names=["generated"],
                          dynamic_shapes=dims, external_data=False, verbose=False, report=False)


def parity_inputs(frames, clip_frames, multiple):
    """Clips of real frames at two sizes: the dataset's own, and three quarters of it (both rounded down to the multiple)."""
    frames = np.asarray(frames[:clip_frames])
    height, width = frames.shape[1:3]
    sizes = [(height // multiple * multiple, width // multiple * multiple),
             (max(multiple, height * 3 // 4 // multiple * multiple), max(multiple, width * 3 // 4 // multiple * multiple))]
    clips = []
    for h, w in dict.fromkeys(sizes):
        clip = torch.from_numpy(frames[:, :h, :w].copy()).permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1
        clips.append(clip)
    return clips


def largest_difference(generator, session, clips):
    """(the largest |ONNX Runtime - PyTorch| over `clips`, where it is in words)."""
    worst, where = 0.0, ""
    for clip in clips:
        with torch.inference_mode():
            expected = generator(clip).numpy()
        got = session.run(None, {session.get_inputs()[0].name: clip.numpy()})[0]
        difference = np.abs(got - expected)
        if difference.max() >= worst:
            n, c, t, y, x = np.unravel_index(int(difference.argmax()), difference.shape)
            worst = float(difference.max())
            where = f"{clip.shape[4]}x{clip.shape[3]} frames: frame {t}, channel {'RGB'[c]}, pixel ({x}, {y})"
    return worst, where


def export_onnx(model, frames, out, tolerance=PARITY_TOLERANCE):
    """Write `model`'s generator to `out` as ONNX, checked first against eager PyTorch with ONNX
    Runtime on clips of `frames` (uint8 (T, H, W, 3), the run's own) at two sizes. Returns the
    largest difference; over `tolerance`, or an operator ONNX lacks, is one UserError and no file."""
    import onnx
    import onnxruntime

    generator = model.generator.float().eval().cpu()
    clips = parity_inputs(frames, model.clip_frames, size_multiple(generator))
    with staged_file(out) as partial:
        try:
            to_onnx(generator, clips[0], partial)
        except Exception as exc:  # torch.onnx's errors have no common type; each names the operator it stopped at
            operator = unsupported_operator(exc)
            what = f"operator {operator} has no ONNX translation" if operator else f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise UserError(model.path, f"its generator cannot be exported to ONNX: {what}") from None
        proto = onnx.load(str(partial))
        for key, value in {**record_of(model), **tiling_record(generator, model.clip_frames)}.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(partial))
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        worst, where = largest_difference(generator, session, clips)
        if not worst <= tolerance:
            raise UserError(out, f"ONNX Runtime differs from PyTorch by {worst:.3g} at {where}, over {tolerance:g}; not written")
    return worst


def export_safetensors(model, out):
    """Write `model`'s generator weights (the average, when that is what it runs) to `out` as
    safetensors, with the run's record as the file's metadata."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.generator.state_dict().items()}
    with staged_file(out) as partial:
        save_file(tensors, str(partial), metadata=record_of(model))
