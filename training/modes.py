"""Training modes: what a step trains, over the same loop, checkpoints and reports. `paired` is the
pix2pix-style step of training/step.py (a conditional D, L1 to the target); `cycle` is CycleGAN
for clips and `recycle` adds Recycle-GAN's temporal predictors (networks/cycle.py), both on an
unpaired dataset. A mode is its networks and its step function, not a second loop.

    generator, discriminator = mode_networks("cycle", build_g, build_d)
    step = step_for("cycle", pool_size=50, seed=0)        # step(nets, a, b, weights, device, amp, guard) -> losses
"""
import torch

from compute.precision import autocast
from networks.cycle import CycleDiscriminators, CycleGenerators
from networks.losses import cycle_losses, discriminator_loss, generator_loss
from training.distributed import Ranks
from training.step import gan_step, set_requires_grad, update_generator

MODES = ("paired", "cycle", "recycle")
UNPAIRED_MODES = ("cycle", "recycle")


def mode_networks(mode, build_generator, build_discriminator):
    """(generator, discriminator or None) of `mode`: `build_generator()` makes one generator, and
    `build_discriminator(in_channels)` one discriminator (or None without an adversarial loss);
    the unpaired modes build two of each (and two predictors for recycle) in a fixed order."""
    if mode == "paired":
        return build_generator(), build_discriminator(6)
    ab, ba = build_generator(), build_generator()
    predictors = (build_generator(), build_generator()) if mode == "recycle" else (None, None)
    d_a = build_discriminator(3)
    d_b = build_discriminator(3) if d_a is not None else None
    return CycleGenerators(ab, ba, *predictors), CycleDiscriminators(d_a, d_b) if d_a is not None else None


class HistoryPool:
    """Shrivastava et al. 2017's history of generated clips, as CycleGAN keeps it: until `size`
    clips are held each new clip is held and shown; after that, each new clip has an even chance
    to be shown, or to take the place of a held one, which is shown instead. The draws come from a
    seeded CPU generator (no device sync), and the pool is saved with the run, so --resume is exact."""

    def __init__(self, size, seed):
        self.size, self.clips = size, []
        self.rng = torch.Generator().manual_seed(seed)

    def __call__(self, clips):
        """(N, C, T, H, W) generated clips, detached -> the clips to show the discriminator."""
        if self.size == 0:
            return clips
        shown = []
        for clip in clips:
            if len(self.clips) < self.size:
                self.clips.append(clip.clone())
                shown.append(clip)
            elif torch.rand((), generator=self.rng) < 0.5:
                k = int(torch.randint(self.size, (), generator=self.rng))
                shown.append(self.clips[k])
                self.clips[k] = clip.clone()
            else:
                shown.append(clip)
        return torch.stack(shown)

    def state_dict(self):
        return {"clips": torch.stack(self.clips).cpu() if self.clips else None, "rng": self.rng.get_state()}

    def load_state_dict(self, state, device):
        self.clips = list(state["clips"].to(device).unbind()) if state["clips"] is not None else []
        self.rng.set_state(state["rng"])


class CycleStep:
    """One step of CycleGAN (with predictors: Recycle-GAN) on real clips a of domain A and b of B:
    (1) update D_A and D_B, real clips towards "real" and clips from the history pools towards
    "fake"; (2) update the generators (and predictors) to fool them, with the cycle, identity and
    (recycle) recurrent and recycle L1 terms. Returns the losses as 0-dim tensors on the device."""

    def __init__(self, pool_size, seed, rank=0):
        self.pools = {side: HistoryPool(pool_size, seed=seed * 1000 + 2 * rank + n) for n, side in enumerate("ab")}

    def __call__(self, nets, a, b, weights, device, amp, guard, ranks=Ranks(), motion=None):
        with autocast(device, amp):
            out = nets.generator(a, b)
        values = {}

        # (1) Update D_A and D_B: one pass over real and pooled generated clips of each domain.
        if nets.discriminator is not None:
            set_requires_grad(nets.raw_discriminator, True)
            shown_a, shown_b = self.pools["a"](out.fake_a.detach()), self.pools["b"](out.fake_b.detach())
            with autocast(device, amp):
                logits_a, logits_b = nets.discriminator(torch.cat([a, shown_a]), torch.cat([b, shown_b]))
            (a_real, a_fake), (b_real, b_fake) = (discriminator_loss(weights.gan, *logits.float().chunk(2))
                                                  for logits in (logits_a, logits_b))
            d_real, d_fake = 0.5 * (a_real + b_real), 0.5 * (a_fake + b_fake)  # per discriminator, as the paired step's
            guard.check([d_real, d_fake])
            guard.update(nets.opt_d, nets.scaler, (d_real + d_fake))
            values.update(d_real=d_real.detach(), d_fake=d_fake.detach())
            set_requires_grad(nets.raw_discriminator, False)

        # (2) Update G_AB and G_BA (and P_A, P_B): fool the updated Ds, and come back to where they started.
        losses = {}
        if nets.raw_discriminator is not None:
            with autocast(device, amp):
                logits_a, logits_b = nets.raw_discriminator(out.fake_a, out.fake_b)
            losses["g_adv"] = generator_loss(weights.gan, logits_a.float()) + generator_loss(weights.gan, logits_b.float())
        losses.update(cycle_losses(a, b, out))
        total = losses.get("g_adv", 0.0) + weights.cycle * (losses["g_cycle"] + weights.identity * losses["g_identity"])
        if "g_recycle" in losses:  # Recycle-GAN weighs its recurrent and recycle terms as the cycle term
            total = total + weights.cycle * (losses["g_recurrent"] + losses["g_recycle"])
        return update_generator(nets, guard, {**losses, "g_total": total}, values)

    def state_dict(self):
        return {side: pool.state_dict() for side, pool in self.pools.items()}

    def load_state_dict(self, state, device):
        for side, pool in self.pools.items():
            pool.load_state_dict(state[side], device)


def step_for(mode, pool_size=50, seed=0, rank=0):
    """The step function of `mode`: training/step.py's gan_step, or a CycleStep with its history pools."""
    return gan_step if mode == "paired" else CycleStep(pool_size, seed, rank)
