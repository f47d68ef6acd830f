"""metrics.jsonl: one JSON object per logged step, with slash-namespaced keys. This module is its
only reader and writer; reports, plots and `runs` read this file and nothing else.

    log = MetricsLog(folder); log.write({"step": 10, "epoch": 1, "loss/g_l1": 0.1})
    read_metrics(folder, having="val/psnr")      # the validation records
"""
import contextlib
import json
import math

from runfolder.layout import RunFolder
from utils.fsio import write_text_atomic, writing


def _parse(line):
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def read_metrics(folder, having=None, last=None):
    """The records of a run's metrics.jsonl, in order; damaged lines (a write cut by a kill) are
    skipped. `having`: only records with this key, and only lines that spell it are parsed, so
    `runs` reads hundreds of logs in about a second; `last`: only the last this many."""
    return records_in(metric_lines(folder), having, last)


def metric_lines(folder):
    """metrics.jsonl's lines unparsed ([] when there is none), for a reader that picks from them more than once."""
    try:
        return RunFolder(folder).metrics.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def records_in(lines, having=None, last=None):
    """read_metrics over lines already read (metric_lines)."""
    if having is not None:
        lines = [line for line in lines if f'"{having}"' in line]
    records = []
    for line in reversed(lines) if last else lines:
        record = _parse(line)
        if record is not None and (having is None or having in record):
            records.append(record)
            if last and len(records) == last:
                break
    return records[::-1] if last else records


def validation_records(lines):
    """The validation records among metrics.jsonl's lines (those with a val/ score), in order."""
    return [record for record in (_parse(line) for line in lines if '"val/' in line)
            if record is not None and any(key.startswith("val/") for key in record)]


def _plain(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)


class MetricsLog:
    """Appends records to metrics.jsonl, and mirrors their numbers to `board` (TensorBoard's
    SummaryWriter, or anything with its add_scalar, add_image and close) under the same names."""

    def __init__(self, folder, resume_step=None, board=None):
        """On resume, records past `resume_step` (written after the checkpoint) are dropped; a new
        run (resume_step None) starts the log empty, dropping what an attempt that never reached a
        checkpoint wrote."""
        folder = RunFolder(folder)
        kept = [r for r in read_metrics(folder) if r["step"] <= resume_step] if resume_step is not None else []
        write_text_atomic(folder.metrics, "".join(json.dumps(r) + "\n" for r in kept))
        self.path = folder.metrics
        self.file = open(self.path, "a", encoding="utf-8")
        self.board = board

    def write(self, record):
        record = {k: (_plain(v) if isinstance(v, float) else v) for k, v in record.items()}
        with writing(self.path, kept="the records before this one are kept"):
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.board is not None:
            for key, value in record.items():
                if "/" in key and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, record["step"])

    def image(self, tag, image, step):
        """An uint8 (H, W, 3) image to the board."""
        if self.board is not None:
            self.board.add_image(tag, image, step, dataformats="HWC")

    def close(self):
        with contextlib.suppress(OSError):  # what a refused write left in the buffer: that write has said so
            self.file.close()
        if self.board is not None:
            self.board.close()


def append_record(folder, record):
    """One record added to a run's metrics.jsonl by another process than the run's (a search's
    driver marking a trial it stopped), once the run has ended."""
    path = RunFolder(folder).metrics
    with writing(path, kept="the records before this one are kept"), open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
