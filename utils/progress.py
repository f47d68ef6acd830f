"""Progress of a long task: a tqdm bar on a terminal; elsewhere (logs, CI, pipes) a plain line every
so often with what is done out of the total, the rate and the time left; nothing when disabled.

    progress = Progress(600, unit="frame", what="compare"); progress.advance(9); progress.close()
    # compare: 9/600 frames, 31.2 frames/s, 19 s left
"""
import os
import sys
import time

from tqdm import tqdm

PLAIN_EVERY_S = 10.0  # a modest rate for logs; $VGAN_PROGRESS_SECONDS sets another


def duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


class Progress:
    """`every_s` None prints plain lines only when asked (`update(..., line=True)`)."""

    def __init__(self, total, unit="frame", what="", initial=0, enabled=True, every_s="default", stream=None):
        if every_s == "default":
            every_s = float(os.environ.get("VGAN_PROGRESS_SECONDS", PLAIN_EVERY_S))
        self.total, self.unit, self.what, self.enabled, self.every_s = total, unit, what, enabled, every_s
        self.stream = stream or sys.stderr
        self.done = self.start_done = initial
        self.started = self.last_line = time.monotonic()
        self.bar = None
        if enabled and self.stream.isatty():
            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=what or None, dynamic_ncols=True, file=self.stream)

    def advance(self, count=1, text=None):
        self.update(self.done + count, text)

    def update(self, done, text=None, line=False):
        """Now at `done`; `text` (losses, say) goes beside the count."""
        self.done = done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.n = done
            if text:
                self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        due = self.every_s is not None and now - self.last_line >= self.every_s
        if line or due:
            self.last_line = now
            print(self.line(text), file=self.stream, flush=True)

    def line(self, text=None):
        """'what: done/total units, rate units/s, time left' and the text."""
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total} {self.unit}s" if self.total else f"{self.done} {self.unit}s"]
        if rate > 0:
            parts.append(f"{rate:.0f} {self.unit}s/s" if rate >= 100 else f"{rate:.3g} {self.unit}s/s")
            if self.total:
                parts.append(f"{duration(max(0, self.total - self.done) / rate)} left")
        return (f"{self.what}: " if self.what else "") + ", ".join(parts) + (f" | {text}" if text else "")

    def write(self, message):
        """A message that stays (printed even when the progress itself is disabled)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
