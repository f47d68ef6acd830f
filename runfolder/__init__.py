"""The experiment folder, checkpoints/EXP/, and everything about it: the name of every file in it
(layout), the checkpoint format and the resume rules (checkpoint, the only module here that
imports torch), the lock, metrics.jsonl, and the events a run logs with the statuses they mean.
Training, inference, `runs`, `sweep` and the pages all go through this package.
"""
