"""A search trial's pause after each validation until its driver has judged it, so that which trials
are pruned, and at which step, does not depend on how fast the trial or the driver runs (a driver
that read the records when it found time would judge a fast trial only after its last step).

The driver opens a trial's gate before starting it. A trial whose gate is open, after logging a
validation, writes the step to `waiting` and waits until `verdict` names that step with "go" or
"stop". Without a gate (train, sweep, a search that does not prune) nothing waits.

    gate = VerdictGate.of(run_folder)               # the trial: None when nobody judges it
    if gate and gate.stop_at(step, interrupted=lambda: signals.signum is not None): save and stop
    gate = VerdictGate.open(root, name)             # the driver, before starting trial `name`
    step = gate.waiting(); gate.tell(step, stop=...)
"""
import time
from pathlib import Path

from runfolder.layout import CheckpointsRoot
from utils.fsio import make_folder, write_text_atomic

POLL_S = 0.05


class VerdictGate:
    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def open(cls, root, name):
        """The gate of trial `name` under the checkpoints `root`, emptied: a restarted driver judges
        afresh, and a resumed trial asks about steps after those it was judged on."""
        gate = cls(CheckpointsRoot(root).search_verdicts(name))
        make_folder(gate.path)
        for stale in ("waiting", "verdict"):
            (gate.path / stale).unlink(missing_ok=True)
        return gate

    @classmethod
    def of(cls, run_folder):
        """The gate of the trial that trains into `run_folder`, if its driver opened one."""
        path = CheckpointsRoot(Path(run_folder).parent).search_verdicts(Path(run_folder).name)
        return cls(path) if path.is_dir() else None

    # The trial's side.
    def stop_at(self, step, interrupted):
        """Wait for the verdict on the validation at `step`: True to stop there. A stop signal
        (`interrupted()`) ends the wait: the loop's own stop then follows."""
        write_text_atomic(self.path / "waiting", str(step))
        while not interrupted():
            verdict = self._verdict()
            if verdict and verdict[0] == step:
                return verdict[1]
            time.sleep(POLL_S)
        return False

    # The driver's side.
    def waiting(self):
        """The step of the validation the trial waits on, or None."""
        waiting = self._read("waiting")
        verdict = self._verdict()
        if not waiting or (verdict and verdict[0] == int(waiting)):
            return None
        return int(waiting)

    def tell(self, step, stop):
        write_text_atomic(self.path / "verdict", f"{step} {'stop' if stop else 'go'}")

    def _verdict(self):
        """(step, stop) of the last verdict told, or None."""
        text = self._read("verdict")
        return (int(text.split()[0]), text.split()[1] == "stop") if text else None

    def _read(self, name):
        try:
            return (self.path / name).read_text().strip()
        except FileNotFoundError:
            return None
