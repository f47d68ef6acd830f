"""The losses of the steps between two reads, summed on the device: the host reads them once per
--log-every (metrics.jsonl and the progress line) and once at each epoch's end (the watchdog), not
after every step, so a step never waits for the device. The discriminator's largest loss of the
epoch is kept too (the watchdog's "won all epoch"). A read also tells whether a loss went
NaN or infinite (the guard of training/step.py), and raises NonFiniteLoss then.

    tally = LossTally(guard); tally.add(gan_step(...))
    means = tally.read_log()      # {"g_l1": 0.21, ...}: the means since the last read_log
    epoch = tally.read_epoch()    # EpochLosses(steps, d_max, means) since the epoch began
"""
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EpochLosses:
    steps: int
    d_max: float  # the largest discriminator loss (mean of its real and fake terms) of one step; -inf without D
    means: dict  # {loss name: mean over the epoch's steps}


class LossTally:
    def __init__(self, guard):
        self.guard = guard
        self.names = None
        self.sums = None  # float64 (2, losses) on the device: row 0 since the last log read, row 1 since the epoch began
        self.d_max = None
        self.counts = [0, 0]  # steps in each row (the host knows how many it ran)

    def add(self, losses):
        """One step's {name: 0-dim tensor} (the same names every step); no host sync."""
        values = torch.stack([value.double() for value in losses.values()])
        if self.sums is None:
            self.names = list(losses)
            self.sums = torch.zeros((2, len(values)), dtype=torch.float64, device=values.device)
            self.d_max = torch.full((), -torch.inf, dtype=torch.float64, device=values.device)
        self.sums += values
        if "d_real" in losses:
            self.d_max = torch.maximum(self.d_max, 0.5 * (values[self.names.index("d_real")] + values[self.names.index("d_fake")]))
        self.counts = [count + 1 for count in self.counts]

    def _read(self, row):
        """(means of `row`, the discriminator's largest loss) in one host sync; NonFiniteLoss, naming
        the losses that were not finite, when the guard tripped; `row` then starts again."""
        if self.sums is None or not self.counts[row]:
            self.guard.raise_if_tripped()
            return {}, -float("inf")
        *sums, d_max = torch.cat([self.sums[row], self.d_max[None]]).tolist()
        bad = [f"loss/{name}" for name, value in zip(self.names, sums) if not math.isfinite(value)]
        self.guard.raise_if_tripped(bad)
        means = {name: value / self.counts[row] for name, value in zip(self.names, sums)}
        self.sums[row].zero_()
        self.counts[row] = 0
        return means, d_max

    def read_log(self):
        """{loss name: mean} over the steps since the last read_log."""
        return self._read(0)[0]

    def read_epoch(self):
        """EpochLosses of the steps since the last read_epoch."""
        steps = self.counts[1]
        means, d_max = self._read(1)
        if self.d_max is not None:
            self.d_max.fill_(-torch.inf)
        return EpochLosses(steps, d_max, means)
