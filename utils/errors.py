"""The one error type a user's mistake raises, and the one-line warning.

Library code raises `UserError(path, "what is wrong and how to fix it")`; `main.py` catches it
and prints `error: <path>: <message>` with exit code 2. Anything else is a bug and keeps its traceback.
"""
import sys


class UserError(Exception):
    """A problem with the user's input, files or flags: printed as one line, exit code 2."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


class VideoError(UserError):
    """A video or frame folder that cannot be read or written."""


class DatasetError(UserError):
    """A built dataset that is missing, damaged, too small or too large."""


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or does not match the flags."""


class TrainingError(UserError):
    """Training that cannot go on (a non-finite loss, a locked experiment)."""


def warn(path, message):
    """Print a one-line warning to stderr in the same shape as an error."""
    print(f"warning: {path}: {message}", file=sys.stderr, flush=True)


class UsageError(Exception):
    """A bad combination of flags, found in a command's main(): printed argparse-style, exit code 2."""
