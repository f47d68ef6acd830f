"""Scores of a trained generator on a dataset's held-out windows, next to the identity baseline.

    scores = evaluate_checkpoint("checkpoints/unet_sample", device=torch.device("cpu"))
"""
from pathlib import Path

from datasets.slider import ClipSlider
from datasets.store import load_dataset
from inference.loader import load_generator
from training.validate import validate
from utils.checkpoint import resolve_checkpoint
from utils.device import resolve_amp
from utils.errors import DatasetError
from utils.fsio import write_json_atomic
from utils.report import write_report


def evaluate_checkpoint(checkpoint, device, data=None, amp=False, batch=4):
    """{"checkpoint", "data", "windows", "frames", "scores": {psnr, ssim, warp_error, l1, each with _identity}}.

    `data` defaults to the dataset the checkpoint was trained on."""
    generator, state = load_generator(checkpoint, device)
    amp = resolve_amp(amp, device)
    data = data or state["config"]["data"]
    dataset = load_dataset(data, mmap=True)
    pool = state["config"]["pool"]
    try:
        slider = ClipSlider(dataset.a, dataset.b, dataset.ranges("val"), pool, pool, batch, shuffle=False, source=data)
    except DatasetError:
        raise DatasetError(data, f"has no validation window of -pool {pool} frames; rebuild it with a larger --val-fraction") from None
    generator.check_size(*dataset.a.shape[1:3])
    scores, (inputs, _, _) = validate(generator, slider, device, amp)
    result = {name.removeprefix("val/"): value for name, value in scores.items()}
    return {"checkpoint": str(resolve_checkpoint(checkpoint)), "step": state["step"], "data": str(data),
            "windows": len(inputs), "frames": int(inputs.shape[0] * inputs.shape[1]), "scores": result}


def save_evaluation(result):
    """Record the result in its experiment folder (for the report), when the checkpoint is in one."""
    folder = Path(result["checkpoint"]).parent
    if (folder / "config.json").exists():
        write_json_atomic(folder / "evaluation.json", result)
        write_report(folder)
