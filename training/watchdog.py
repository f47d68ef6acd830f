"""Warns, at most once per epoch, when a GAN has stopped learning in one of the two usual ways.
Each warning is given once when its condition starts, and again only after it has cleared.

    dog = Watchdog(); dog.step(d_loss, g_adv); warnings = dog.end_epoch()
"""
import math

D_WON_BELOW = 0.05  # discriminator loss (mean of real and fake terms) this close to zero all epoch
CLIMB_EPOCHS = 3  # generator adversarial loss rising for this many epochs in a row
CLIMB_FACTOR = 1.05  # each epoch at least 5% above the one before


class Watchdog:
    def __init__(self):
        self.d_max = -math.inf
        self.g_sum, self.steps = 0.0, 0
        self.g_means = []
        self.active = set()  # conditions already warned about and not yet cleared

    def step(self, d_loss, g_adv):
        self.d_max = max(self.d_max, d_loss)
        self.g_sum += g_adv
        self.steps += 1

    def end_epoch(self):
        """Messages for this epoch (possibly none); then start counting the next one."""
        if self.steps == 0:
            return []
        found = {}
        if self.d_max < D_WON_BELOW:
            found["d_won"] = (f"the discriminator has won: its loss stayed below {D_WON_BELOW} all epoch, so the generator "
                              f"learns little from it; try --spectral-norm, fewer --d-layers or --d-channels, a higher --l1, "
                              f"or --gan-loss lsgan")
        self.g_means.append(self.g_sum / self.steps)
        recent = self.g_means[-(CLIMB_EPOCHS + 1):]
        if len(recent) == CLIMB_EPOCHS + 1 and all(b > a * CLIMB_FACTOR for a, b in zip(recent, recent[1:])):
            trail = " -> ".join(f"{v:.3g}" for v in recent)
            found["g_climbs"] = (f"the generator's adversarial loss keeps climbing ({trail}); try a lower --lr, "
                                 f"--spectral-norm, a higher --l1, or --gan-loss lsgan")
        messages = [message for key, message in found.items() if key not in self.active]
        self.active = set(found)
        self.d_max, self.g_sum, self.steps = -math.inf, 0.0, 0
        return messages
