"""The events a run logs in metrics.jsonl, and the status of a run they mean: one vocabulary for
the loop that writes them, `runs` that shows them and `sweep` that acts on them.

    run_status(RunFolder("checkpoints/unet_sample"))   # -> "finished"
"""
from runfolder.layout import RunFolder
from runfolder.lock import lock_is_live
from runfolder.metrics import read_metrics

# What the loop logs ({"event": ...}), each at the step it happened.
STARTED = "started"
RESUMED = "resumed"
INTERRUPTED = "interrupted"  # a stop signal or a search's verdict: saved, and `--resume` goes on
FAILED = "failed"  # a non-finite loss: last.pt keeps the step before
FINISHED = "finished"
PRUNED = "pruned"  # a search stopped it, clearly behind (after its save): it is not resumed
STARTS = (STARTED, RESUMED)

# A run's status: one of the three ending events, or
RUNNING = "running"  # a live process holds the folder's lock
NEW = "new"  # nothing logged and nothing saved yet
ENDINGS = (FINISHED, FAILED, INTERRUPTED, PRUNED)


def events(folder):
    """The event records of a run, in order."""
    return read_metrics(folder, having="event")


def run_status(folder, logged=None):
    """RUNNING, FINISHED, FAILED, INTERRUPTED, PRUNED or NEW. A run that stopped without logging how it ended
    (killed) is INTERRUPTED. `logged`: its event records, when already read."""
    folder = RunFolder(folder)
    if lock_is_live(folder):
        return RUNNING
    logged = events(folder) if logged is None else logged
    last = logged[-1]["event"] if logged else None
    if last in ENDINGS:
        return last
    return INTERRUPTED if last or folder.last.exists() else NEW
