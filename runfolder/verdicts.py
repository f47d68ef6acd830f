"""A search trial's pause after each validation until its driver has judged it, so that which trials
are pruned, and at which step, does not depend on how fast the trial or the driver runs (a driver
that read the records when it found time would judge a fast trial only after its last step).

The driver opens a trial's gate before starting it. A trial whose gate is open, after logging a
validation, writes the step to `waiting` and waits until `verdict` names that step with "go" or
"stop". Without a gate (train, sweep, a search that does not prune) nothing waits. The driver
beats a counter in `heartbeat` at every look; a trial that sees it stand still for
DRIVER_SILENCE_S (a driver killed where no signal reaches its trials, as on Dask) stops waiting,
saves and exits, to be resumed by the next driver.

    gate = VerdictGate.of(run_folder)               # the trial: None when nobody judges it
    why = gate.stop_at(step, interrupted=lambda: signals.signum is not None)   # None: go on; PRUNED or SILENT: save and stop
    gate = VerdictGate.open(root, name)             # the driver, before starting trial `name`
    gate.beat(); step = gate.waiting(); gate.tell(step, stop=...)
"""
import time
from pathlib import Path

from runfolder.layout import CheckpointsRoot
from utils.fsio import make_folder, write_text_atomic

POLL_S = 0.05
DRIVER_SILENCE_S = 300.0  # a driver looks every half second; one silent for minutes is gone
PRUNED, SILENT = "pruned", "driver silent"  # why a trial stops at its gate


class VerdictGate:
    def __init__(self, path, silence_s=DRIVER_SILENCE_S):
        self.path, self.silence_s = Path(path), silence_s
        self.clock, self.sleep = time.monotonic, time.sleep  # the wait's own clock (a test's may be a fake)

    @classmethod
    def open(cls, root, name):
        """The gate of trial `name` under the checkpoints `root`, emptied: a restarted driver judges
        afresh, and a resumed trial asks about steps after those it was judged on."""
        gate = cls(CheckpointsRoot(root).search_verdicts(name))
        make_folder(gate.path)
        for stale in ("waiting", "verdict", "heartbeat"):
            (gate.path / stale).unlink(missing_ok=True)
        return gate

    @classmethod
    def of(cls, run_folder):
        """The gate of the trial that trains into `run_folder`, if its driver opened one."""
        path = CheckpointsRoot(Path(run_folder).parent).search_verdicts(Path(run_folder).name)
        return cls(path) if path.is_dir() else None

    # The trial's side.
    def stop_at(self, step, interrupted):
        """Wait for the verdict on the validation at `step`: None to go on, PRUNED to stop there, or
        SILENT when the driver's heartbeat stood still for `silence_s` (the driver is gone: stop,
        resumable). A stop signal (`interrupted()`) ends the wait: the loop's own stop then follows.
        The silence is timed on this process's own clock, so clocks of other machines do not matter."""
        write_text_atomic(self.path / "waiting", str(step))
        beat, heard = self._read("heartbeat"), self.clock()
        while not interrupted():
            verdict = self._verdict()
            if verdict and verdict[0] == step:
                return PRUNED if verdict[1] else None
            if self._read("heartbeat") != beat:
                beat, heard = self._read("heartbeat"), self.clock()
            elif self.clock() - heard > self.silence_s:
                return SILENT
            self.sleep(POLL_S)
        return None

    # The driver's side.
    def beat(self):
        """Say the driver is alive: the trial waits only while this counter moves."""
        write_text_atomic(self.path / "heartbeat", str(int(self._read("heartbeat") or 0) + 1))

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
