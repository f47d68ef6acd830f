"""Training progress: a tqdm bar on a terminal, plain lines otherwise (logs, CI, pipes).

    progress = Progress(total=360, initial=0); progress.update(step, text); progress.close()
"""
import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total, initial=0, enabled=True):
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True) if enabled and sys.stderr.isatty() else None

    def update(self, step, text, log_line):
        """Advance to `step`; `text` is the losses and speed; plain mode prints only on log steps."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(text, refresh=True)
        elif log_line:
            print(f"step {step}: {text}", flush=True)

    def write(self, message):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
