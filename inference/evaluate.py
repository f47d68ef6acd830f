"""Scores of a trained generator on a dataset's held-out windows, next to the identity baseline. An
unpaired model on an unpaired dataset translates the held-out windows of its direction's side and
is scored by the round trip back and its steadiness (metrics/scores.py's score_translation); on a
paired dataset (a known answer) it is scored against the target like any generator.

    result = evaluate_model(model, ClipGenerator(model.generator, device))      # on the data it was trained on
    result = evaluate_model(model, generate, split="test")                       # on its test footage, clip by clip
"""
import torch

from datasets.slider import validation_slider
from metrics import displays
from datasets.store import load_dataset
from datasets.test_part import check_clip_frames, test_clips
from inference.compare import Windows, score_frames
from inference.generate import generate_windows, metric_budget, round_trip_windows
from utils.errors import DatasetError
from metrics.scores import requested_scores, score_translation, score_windows
from utils.progress import Progress


def evaluate_generator(generate, dataset, clip_frames, batch=4, quiet=True, back=None, side="a", metrics=(), device="cpu",
                       weights=None):
    """{"windows", "frames", "scores": {psnr, ssim, masked_warp_error, tof, flicker, l1, each with
    _identity}} over the validation windows of `dataset` (uint8 frames), each held-out frame once,
    with the `metrics` asked for by name (--metrics: jod, lpips, ...) computed on `device`, from
    the backbone weights in `weights`. On an unpaired dataset, `side`'s windows, brought back by
    `back`: the round trip's scores."""
    if metrics and dataset.unpaired:
        raise DatasetError(dataset.path, f"is unpaired: it has no target to score {', '.join(metrics)} against; evaluate "
                                         f"on a paired dataset of the same domains, or compare a video with --target")
    try:
        slider = validation_slider(dataset, clip_frames, batch, source=dataset.path, side=side)
    except DatasetError:
        raise DatasetError(dataset.path, f"has no validation window of -pool {clip_frames} frames; rebuild it with a larger --val-fraction") from None
    progress = Progress(slider.windows * clip_frames, unit="frame", what=f"evaluate {dataset.path}", enabled=not quiet)
    if dataset.unpaired:
        inputs, outputs, recovered = round_trip_windows(generate, back, slider, progress)
        scores = score_translation(inputs, outputs, recovered)
    else:
        inputs, outputs, targets = generate_windows(generate, slider, progress)
        scores = score_windows(inputs, outputs, targets)
        scores.update(requested_scores(metrics, inputs, outputs, targets, dataset.meta.get("fps") or 25, device, weights))
    progress.close()
    return {"windows": len(inputs), "frames": int(inputs.shape[0] * inputs.shape[1]), "scores": scores}


def evaluate_model(model, generate, data=None, batch=4, quiet=True, back=None, metrics=(), device="cpu", weights=None, split="val"):
    """evaluate_generator for a trained model on `data` (default: the dataset it was trained on),
    as the summary that is kept as JSON; with `split` "test", on the dataset's test footage instead."""
    data = data or model.data
    dataset = load_dataset(data, mmap=True)
    if dataset.unpaired and not model.unpaired:
        raise DatasetError(data, "is unpaired (no targets), so a paired model cannot be scored on it; evaluate it on a paired dataset")
    side = "b" if model.direction == "BtoA" else "a"
    if split == "test":
        result = evaluate_on_test(generate, dataset, model.clip_frames, batch, back, side, metrics, device, weights)
    else:
        result = evaluate_generator(generate, dataset, model.clip_frames, batch, quiet, back, side, metrics, device, weights)
    return {**model.describe(), "data": str(data), "split": split, "scored_on": str(device), **result,
            **displays(metrics)}  # scored_on: a GPU's TF32 scores a little apart


def evaluate_on_test(generate, dataset, clip_frames, batch=4, back=None, side="a", metrics=(), device="cpu", weights=None):
    """{"clips": [{"name", "frames", "scores"}], "frames", "scores"} over the test clips of
    `dataset`, each run whole in windows of `clip_frames` as compare runs a video; "scores" is the
    mean of the clips' scores weighted by their frames."""
    clips = test_clips(dataset.path, dataset.meta, side)
    check_clip_frames(dataset.path, clips, clip_frames, "the model's")
    windows, memory = Windows(clip_frames, clip_frames // 2, batch), metric_budget(torch.device(device))
    per_clip = []
    for clip in clips:
        scores = score_frames(generate, clip.inputs, clip.targets, windows, metrics, dataset.meta.get("fps") or 25, device, weights, back,
                              memory=memory)
        per_clip.append({"name": clip.name, "frames": len(clip.inputs), "scores": scores})
    frames = sum(c["frames"] for c in per_clip)
    names = set.intersection(*(set(c["scores"]) for c in per_clip))
    mean = {name: sum(c["scores"][name] * c["frames"] for c in per_clip) / frames for name in sorted(names)
            if all(isinstance(c["scores"][name], (int, float)) for c in per_clip)}
    return {"clips": per_clip, "frames": frames, "scores": mean}
