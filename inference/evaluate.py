"""Scores of a trained generator on a dataset's held-out windows, next to the identity baseline.

    result = evaluate_model(model, ClipGenerator(model.generator, device))      # on the data it was trained on
"""
from datasets.slider import validation_slider
from datasets.store import load_dataset
from inference.generate import generate_windows
from utils.errors import DatasetError
from utils.metrics import score_windows
from utils.progress import Progress


def evaluate_generator(generate, dataset, pool, batch=4, quiet=True):
    """{"windows", "frames", "scores": {psnr, ssim, masked_warp_error, tof, flicker, l1, each with
    _identity}} over the
    validation windows of `dataset` (uint8 frames), each held-out frame once."""
    try:
        slider = validation_slider(dataset, pool, batch, source=dataset.path)
    except DatasetError:
        raise DatasetError(dataset.path, f"has no validation window of -pool {pool} frames; rebuild it with a larger --val-fraction") from None
    progress = Progress(slider.windows * pool, unit="frame", what=f"evaluate {dataset.path}", enabled=not quiet)
    inputs, outputs, targets = generate_windows(generate, slider, progress)
    progress.close()
    return {"windows": len(inputs), "frames": int(inputs.shape[0] * inputs.shape[1]),
            "scores": score_windows(inputs, outputs, targets)}


def evaluate_model(model, generate, data=None, batch=4, quiet=True):
    """evaluate_generator for a trained model on `data` (default: the dataset it was trained on),
    as the summary that is kept as JSON."""
    data = data or model.data
    dataset = load_dataset(data, mmap=True)
    return {**model.describe(), "data": str(data), **evaluate_generator(generate, dataset, model.pool, batch, quiet)}
