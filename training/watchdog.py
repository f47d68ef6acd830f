"""Warns, at most once per epoch, when a GAN has stopped learning in one of the two usual ways and
the reconstruction loss has stopped falling with it. A discriminator that wins, or an adversarial
loss that climbs, is normal in pix2pix-style training while the L1 to the target still falls; it is
worth a warning only when the L1 stalls too. Each warning is given once when its condition starts,
and again only after it has cleared.

    dog = Watchdog(); warnings = dog.end_epoch(d_max, g_adv, g_l1)   # the epoch's largest D loss, G's mean losses
"""
D_WON_BELOW = 0.05  # discriminator loss (mean of real and fake terms) this close to zero all epoch
CLIMB_EPOCHS = 3  # generator adversarial loss rising for this many epochs in a row
CLIMB_FACTOR = 1.05  # each epoch at least 5% above the one before
# The L1 has stalled when its mean over the last STALL_EPOCHS epochs is not 1% below its mean over the
# STALL_EPOCHS before. Windows, not single epochs: an epoch of a dozen steps can be flat by chance
# (edges -> frames paused for one epoch at 150 steps while it fell 5% an epoch around it).
STALL_EPOCHS = 3
STALL_FACTOR = 0.99


class Watchdog:
    def __init__(self):
        self.g_means, self.l1_means = [], []
        self.active = set()  # conditions already warned about and not yet cleared

    def l1_stalled(self):
        if len(self.l1_means) < 2 * STALL_EPOCHS:
            return False
        recent, before = self.l1_means[-STALL_EPOCHS:], self.l1_means[-2 * STALL_EPOCHS:-STALL_EPOCHS]
        return sum(recent) > STALL_FACTOR * sum(before)

    def end_epoch(self, d_max, g_adv, l1):
        """Messages for an epoch (possibly none) whose steps' discriminator loss (the mean of its real
        and fake terms) was at most `d_max`, and whose adversarial and L1 losses of G averaged
        `g_adv` and `l1`."""
        self.g_means.append(g_adv)
        self.l1_means.append(l1)
        found = {}
        stalled = self.l1_stalled()
        trail = " -> ".join(f"{v:.3g}" for v in self.l1_means[-2 * STALL_EPOCHS:])
        if stalled and d_max < D_WON_BELOW:
            found["d_won"] = (f"the discriminator has won (its loss stayed below {D_WON_BELOW} all epoch) and the L1 has "
                              f"stopped falling ({trail}); keep --spectral-norm on, try fewer --d-layers or --d-channels, a "
                              f"higher --l1, or --gan-loss lsgan")
        climb = self.g_means[-(CLIMB_EPOCHS + 1):]
        if stalled and len(climb) == CLIMB_EPOCHS + 1 and all(b > a * CLIMB_FACTOR for a, b in zip(climb, climb[1:])):
            found["g_climbs"] = (f"the generator's adversarial loss keeps climbing ({' -> '.join(f'{v:.3g}' for v in climb)}) "
                                 f"and the L1 has stopped falling ({trail}); keep --spectral-norm on, try a lower --lr, a higher "
                                 f"--l1, or --gan-loss lsgan")
        messages = [message for key, message in found.items() if key not in self.active]
        self.active = set(found)
        return messages
