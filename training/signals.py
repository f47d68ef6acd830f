"""Stopping a run cleanly: SIGINT and SIGTERM ask the loop to save and exit at the next step boundary.

    with StopSignals() as signals: ... if signals.signum is not None: save and exit EXIT_CODES[signals.signum]
"""
import signal
import time

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopSignals:
    """Another signal a second or more after the first (a deliberate second Ctrl-C) stops at once.
    Copies of the first signal that arrive together (torchrun forwarding a Ctrl-C the worker also
    got, a parent-death signal sent twice) do not cut the save short."""

    REPEAT_AFTER_S = 1.0

    def __init__(self):
        self.signum = None
        self.first_at = None

    def _handle(self, signum, frame):
        if self.signum is not None:
            if time.monotonic() - self.first_at >= self.REPEAT_AFTER_S:
                raise KeyboardInterrupt
            return
        self.signum, self.first_at = signum, time.monotonic()

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
