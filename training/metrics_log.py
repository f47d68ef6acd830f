"""metrics.jsonl (one JSON object per logged step, slash-namespaced keys) and TensorBoard, side by side.

Reports, plots and `runs` read metrics.jsonl and nothing else.
    log = MetricsLog("checkpoints/unet_sample"); log.write({"step": 10, "epoch": 0, "loss/g_l1": 0.1})
"""
import json
import math
from pathlib import Path

from utils.fsio import write_text_atomic

METRICS_NAME = "metrics.jsonl"


def read_metrics(folder):
    """Every record of a metrics.jsonl; damaged lines (a write cut by a kill) are skipped."""
    records = []
    try:
        lines = (Path(folder) / METRICS_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _plain(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)


class MetricsLog:
    def __init__(self, folder, resume_step=None):
        """Open the log. On resume, records past `resume_step` (written after the checkpoint) are
        dropped; a new run (resume_step None) starts it empty, dropping what an attempt that never
        reached a checkpoint wrote."""
        self.path = Path(folder) / METRICS_NAME
        kept = [r for r in read_metrics(folder) if r["step"] <= resume_step] if resume_step is not None else []
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a", encoding="utf-8")
        from torch.utils.tensorboard import SummaryWriter  # slow to import: only when a run starts

        self.board = SummaryWriter(str(folder), purge_step=resume_step if resume_step is not None else 0)

    def write(self, record):
        """Append one record; numbers also go to TensorBoard under their slash-namespaced names."""
        record = {k: (_plain(v) if isinstance(v, float) else v) for k, v in record.items()}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in record.items():
            if "/" in key and isinstance(value, (int, float)):
                self.board.add_scalar(key, value, record["step"])

    def image(self, tag, image, step):
        """An uint8 (H, W, 3) image to TensorBoard."""
        self.board.add_image(tag, image, step, dataformats="HWC")

    def close(self):
        self.file.close()
        self.board.close()
