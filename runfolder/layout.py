"""Where everything lives in an experiment folder and in the checkpoints root that holds them. No
other module spells these names.

    folder = RunFolder("checkpoints/unet_sample"); folder.last, folder.metrics, folder.sample_grid(3)
    CheckpointsRoot("checkpoints").folders()     # every experiment folder, by name
"""
import os
import re
from pathlib import Path

RESULT_KINDS = ("compare", "evaluation")  # the latest result of each is kept in the experiment
CLIP_ROLES = ("input", "generated", "target")  # the fixed validation clip's strips, for the comparison page


class RunFolder(os.PathLike):
    """checkpoints/EXP/: config.json, last.pt (and its JSON header), kept epoch_NNNN.pt,
    metrics.jsonl, TensorBoard events, samples/, network_source/ (copies of a plug-in's files),
    the lock, the latest results and index.html.
    Used as a path, it is the folder itself."""

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    def __repr__(self):
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self):
        return hash(self.path)

    @property
    def name(self):
        return self.path.name

    @property
    def config(self):
        return self.path / "config.json"

    @property
    def last(self):
        """The checkpoint the folder means when it is given as a checkpoint."""
        return self.path / "last.pt"

    def epoch_checkpoint(self, epoch):
        return self.path / f"epoch_{epoch:04d}.pt"

    def epoch_checkpoints(self):
        """The kept epoch_NNNN.pt files, oldest first."""
        return sorted(self.path.glob("epoch_*.pt"))

    @property
    def metrics(self):
        return self.path / "metrics.jsonl"

    def network_copy(self, role, file, sha256):
        """The copy, for the record, of the file a plug-in `role` ("generator", "discriminator")
        came from, one per version. It is never imported: the original is, while its hash matches."""
        return self.path / "network_source" / f"{role}_{sha256[:12]}_{Path(file).name}"

    @property
    def samples(self):
        return self.path / "samples"

    def sample_grid(self, epoch):
        return self.samples / f"epoch_{epoch:04d}.png"

    def sample_video(self, epoch):
        return self.samples / f"epoch_{epoch:04d}.mp4"

    def sample_profile(self, epoch):
        """The temporal profile (utils.images.temporal_profile) of the validation windows, in order."""
        return self.samples / f"profile_{epoch:04d}.png"

    def sample_profiles(self):
        """The per-epoch temporal profiles, oldest first."""
        return sorted(self.samples.glob("profile_*.png"))

    def sample_grids(self):
        """The per-epoch sample grids, newest first."""
        return sorted(self.samples.glob("epoch_*.png"), reverse=True)

    def sample_videos(self):
        """The per-epoch sample videos, oldest first."""
        return sorted(self.samples.glob("epoch_*.mp4"))

    def clip_strip(self, role):
        """The fixed validation clip as a strip of frames; `role` is one of CLIP_ROLES."""
        return self.samples / f"clip_{role}.png"

    @property
    def lock(self):
        return self.path / "lock"

    @property
    def lock_owner(self):
        return self.path / "lock.json"

    def result(self, kind):
        """The latest compare or evaluate result kept here; `kind` is one of RESULT_KINDS."""
        return self.path / f"{kind}.json"

    @property
    def page(self):
        return self.path / "index.html"

    def is_experiment(self):
        """True when the folder holds an experiment (a config, a metrics log or a checkpoint)."""
        return any(p.exists() for p in (self.config, self.metrics, self.last))

    def holds_only_the_lock(self):
        return {p.name for p in self.path.iterdir()} <= {self.lock.name}


class CheckpointsRoot:
    """checkpoints/: one experiment folder per run, the comparison page and the sweep's logs."""

    def __init__(self, path):
        self.path = Path(path)

    def folder(self, name):
        return RunFolder(self.path / name)

    def folders(self):
        """Every experiment folder under the root, by name."""
        if not self.path.is_dir():
            return []
        return [RunFolder(p) for p in sorted(self.path.iterdir()) if p.is_dir() and RunFolder(p).is_experiment()]

    def latest(self):
        """The experiment folder whose last.pt was written most recently, or None."""
        saved = [f for f in self.folders() if f.last.exists()]
        return max(saved, key=lambda f: f.last.stat().st_mtime) if saved else None

    @property
    def page(self):
        return self.path / "index.html"

    @property
    def page_files(self):
        """The folder beside the comparison page that holds its images."""
        return self.path / "index_files"

    def page_image(self, number):
        return self.page_files / f"clip_{number}.png"

    def sweep_log(self, name):
        """Where a sweep that runs points side by side appends point `name`'s output."""
        return self.path / "sweep_logs" / f"{name}.log"

    @property
    def search_journal(self):
        """The searches' Optuna studies (journal storage): every trial asked, reported and told."""
        return self.path / "search" / "journal.log"

    def search_verdicts(self, name):
        """Where trial `name` of a pruning search waits for its driver's verdict on each validation."""
        return self.path / "search" / "verdicts" / name

    @property
    def search_summary(self):
        """The last search's summary, for `runs` and its page: trials, best-of-k curves, Pareto fronts."""
        return self.path / "search" / "summary.json"


class VerdictFolder:
    """What `verdict` keeps beside the runs it judged: its page, CHECKPOINTS/verdict.html, and in
    CHECKPOINTS/verdict/ every score on every test clip (scores.json), the last verdict
    (verdict.json) and the page's images (a frame crop and a temporal profile per run)."""

    def __init__(self, checkpoints):
        self.root = Path(checkpoints)
        self.path = self.root / "verdict"

    @property
    def scores(self):
        return self.path / "scores.json"

    @property
    def result(self):
        return self.path / "verdict.json"

    @property
    def page(self):
        return self.root / "verdict.html"

    def images(self, run):
        return self.path / "images" / run


def search_trial_name(data, structure, number):
    """The run folder of a search's trial `number` of `structure` on `data` (names already made safe)."""
    return f"{data}_search_{structure}_t{number:03d}"


def is_search_trial(name):
    """Whether a run folder's name is a search trial's: chosen on validation frames, never a member of a seed group."""
    return re.search(r"_search_.+_t\d{3,}$", name) is not None


def experiment_folder(config):
    """The RunFolder a train config writes into."""
    return RunFolder(Path(config["checkpoints"]) / config["name"])
