"""Every run's scores on every test clip, for `verdict`: each run's final checkpoint over each clip
of its dataset's test part (datasets/test_part.py), in windows and tiles as compare runs a video,
scored as compare scores one. Scores are kept in CHECKPOINTS/verdict/scores.json by (checkpoint
hash, clip hash, metric), so a verdict run again after more seeds scores only the new runs, and a
checkpoint that changed since it was scored is scored again.

    table = score_runs(runs, clips, settings)      # {run name: {clip name: {metric: value, ...}}}
"""
import hashlib
from dataclasses import dataclass

from metrics import METRICS
from runfolder.layout import RunFolder, VerdictFolder
from utils.fsio import read_json, write_json_atomic
from utils.progress import Progress

CACHE_VERSION = 1


@dataclass(frozen=True)
class ScoringSettings:
    """How the runs are run and scored: the inference flags' values, shared by every run so that
    their scores differ by the network alone."""

    device: object
    amp: str = "off"
    memory_format: str = "auto"
    max_memory: int | None = None
    tile: object = None
    tile_overlap: int | None = None
    weights: str = "average"
    direction: str = "AtoB"
    metrics: tuple = ()  # scores asked for by name beside those every run gets (JOD by default)
    metric_weights: str | None = None
    batch: int = 4
    quiet: bool = True

    def key(self):
        """What of these settings changes a score (tiles do not: they match whole frames): part of every cache key."""
        return f"{self.weights}:{self.direction}:{self.amp}:{self.device.type}"


def file_hash(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def clip_hash(clip):
    digest = hashlib.sha256(clip.inputs.tobytes())
    if clip.targets is not None:
        digest.update(clip.targets.tobytes())
    return digest.hexdigest()[:20]


class ScoreCache:
    """CHECKPOINTS/verdict/scores.json: {"version", "scores": {"CHECKPOINT/SETTINGS/CLIP": {metric: value}}}.
    Written whole after each run, so an interrupted verdict keeps what it scored."""

    def __init__(self, folder):
        self.path = VerdictFolder(folder).scores
        stored = read_json(self.path)
        self.scores = stored["scores"] if isinstance(stored, dict) and stored.get("version") == CACHE_VERSION else {}

    def get(self, key):
        return self.scores.get(key, {})

    def put(self, key, values):
        self.scores[key] = {**self.scores.get(key, {}), **values}

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"version": CACHE_VERSION, "scores": self.scores})


def wanted_metrics(unpaired, requested):
    """The metrics a verdict reports, in registry order: what validation logs for this kind of model
    (those a whole video does not give, L1, drop out where they are missing), and those asked for by name."""
    kind = "unpaired" if unpaired else "paired"
    logged = [name for name, metric in METRICS.items() if metric.validated and kind in metric.applies]
    return logged + [name for name in requested if name not in logged]


def score_runs(runs, clips, settings, folder, keep_images=None, fps=25):
    """({run name: {clip name: {metric: value, metric_identity: value}}}, how many run-clip pairs
    were scored now) for `runs` (name -> run folder) on `clips` (TestClips). `keep_images(run name)`
    -> a folder where the first clip's temporal profile and middle-frame crop of that run are saved
    for the page, or None."""
    from inference.compare import Windows, score_frames
    from inference.generate import clip_generator, metric_budget
    from training.trained_model import load_model

    cache = ScoreCache(folder)
    clip_keys = {clip.name: clip_hash(clip) for clip in clips}
    table, scored_now = {}, 0
    memory = metric_budget(settings.device, settings.max_memory)
    progress = Progress(len(runs) * sum(len(clip.inputs) for clip in clips), unit="frame", what="verdict: scoring the test clips",
                        enabled=not settings.quiet)
    for name, run_folder in runs.items():
        checkpoint = RunFolder(run_folder).last
        prefix = f"{file_hash(checkpoint)}/{settings.key()}/"
        images = keep_images(name) if keep_images else None
        table[name] = {clip.name: cache.get(prefix + clip_keys[clip.name]) for clip in clips}
        model = None
        for index, clip in enumerate(clips):
            scored = table[name][clip.name]
            picture = images if index == 0 and images and not (images / "profile.png").exists() else None
            if scored and "_wanted" in scored and set(scored["_wanted"]) >= set(settings.metrics) and picture is None:
                progress.advance(len(clip.inputs))
                continue
            if picture:
                picture.mkdir(parents=True, exist_ok=True)
            if model is None:
                model = load_model(run_folder, settings.device, average=settings.weights == "average", direction=settings.direction)
                generate, back = _generators(model, clip_generator, settings, clip)
            windows = Windows(model.clip_frames, model.clip_frames // 2, settings.batch)
            values = score_frames(generate, clip.inputs, clip.targets, windows, settings.metrics, fps, str(settings.device),
                                  settings.metric_weights, back,
                                  profile=picture / "profile.png" if picture else None,
                                  middle=picture / "middle.png" if picture else None,
                                  memory=memory)
            values["_wanted"] = sorted(set(settings.metrics) | set(scored.get("_wanted", [])))
            cache.put(prefix + clip_keys[clip.name], values)
            table[name][clip.name] = cache.get(prefix + clip_keys[clip.name])
            scored_now += 1
            progress.advance(len(clip.inputs))
        cache.save()
    progress.close()
    return table, scored_now


def _generators(model, clip_generator, settings, clip):
    """The model's generator (and, unpaired, the one back) planned for windows of this clip's frame size."""
    height, width = clip.inputs.shape[1:3]
    shape = (settings.batch, model.clip_frames, height, width)

    def planned(one):
        return clip_generator(one, settings.device, shape, settings.amp, settings.memory_format, settings.max_memory,
                              settings.tile, settings.tile_overlap)

    return planned(model), planned(model.going_back()) if model.unpaired else None


def structure_facts_of(run_folder, device):
    """inspect-network's numbers of a run's generator, at the clips and size it trained on (for the page)."""
    from inference.inspection import structure_facts
    from training.trained_model import load_model

    model = load_model(run_folder, device)
    return structure_facts(model.generator, model.clip_frames, model.size, device)
