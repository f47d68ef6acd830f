"""Training modes: what a step trains, over the same loop, checkpoints and reports. A mode is its
networks, its step function and how it is validated and shown, not a second loop; every part of
vgan that differs by mode asks the run's Mode here, and none compares a mode's name. `paired` is
the pix2pix-style step of training/step.py (a conditional D, L1 to the target); `cycle` is
CycleGAN for clips and `recycle` adds Recycle-GAN's temporal predictors (networks/cycle.py), both
on an unpaired dataset. Adding a mode is its Mode here plus one entry in networks/registry.py's
MODES, which names it (the command line reads that light table).

    mode = MODES["cycle"].load()
    generator, discriminator = mode.networks(build_g, build_d)
    train_step = mode.new_train_step(pool_size=50, seed=0, rank=0)  # train_step(nets, a, b, weights, device, amp, guard) -> losses
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from compute.precision import autocast
from metrics import shown_in
from networks.cycle import CycleDiscriminators, CycleGenerators
from networks.losses import cycle_losses, discriminator_loss, generator_loss
from training.distributed import Ranks
from training.samples import write_samples
from training.step import gan_step, set_requires_grad, update_generator
from training.validate import validate, validate_unpaired


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


@dataclass(frozen=True)
class Mode:
    """One training mode. The callables take what the loop has at hand: `build_generator()` makes
    one generator and `build_discriminator(in_channels)` one discriminator (None without an
    adversarial loss); `val` is the held-out windows of each side (one side for pairs)."""

    generator: Callable  # (build_generator) -> the generator it trains and saves, built in a fixed order
    discriminator: Callable  # (build_discriminator) -> its discriminator, or None
    new_train_step: Callable  # (pool_size, seed, rank) -> train_step(nets, x, y, weights, device, amp, guard, ranks, motion)
    validate: Callable  # (generator, val, device, amp, channels_last, perceptual=, fps=) -> (scores, clips)
    write_samples: Callable  # (folder, epoch, clips, fps, log): the pictures of validate's clips
    validation_line: Callable  # (when, scores) -> the progress line of a validation
    what_trains: Callable  # (network) -> the start line's words for what trains
    directions: Callable  # (generator, "AtoB" or "BtoA") -> (the network that translates, the one back or None)
    reconstruction_loss: str  # the loss that says how close the generator comes (progress line, watchdog)

    def networks(self, build_generator, build_discriminator):
        """(generator, discriminator or None): generators first, so that a seed gives the same weights."""
        return self.generator(build_generator), self.discriminator(build_discriminator)


def cycle_generators(predictors):
    """G_AB and G_BA (and, for Recycle-GAN, the predictors P_A and P_B), built in that order."""
    return lambda build: CycleGenerators(build(), build(), *((build(), build()) if predictors else ()))


def cycle_discriminators(build_discriminator):
    """D_A and D_B, unconditional (3 channels), or None without an adversarial loss."""
    d_a = build_discriminator(3)
    return CycleDiscriminators(d_a, build_discriminator(3)) if d_a is not None else None


def paired_line(when, scores):
    """"step 0: validation L1 0.1886 (identity 0.1789), PSNR 13.19 dB (identity 13.19 dB), ...": the
    scores the metric registry shows in progress lines, each beside the identity's."""
    def score(name, metric):
        value, identity = (f"{scores[f'val/{key}']:.{metric.digits}f}{metric.unit}" for key in (name, f"{name}_identity"))
        return f"{metric.short} {value} (identity {identity})"

    return f"{when}: validation " + ", ".join(score(name, m) for name, m in shown_in("progress") if f"val/{name}" in scores)


def cycle_line(when, scores):
    flicker = f", flicker {scores['val/flicker']:.3f} of the input's" if "val/flicker" in scores else ""
    return (f"{when}: validation cycle PSNR {scores['val/cycle_psnr_ab']:.2f} dB (A to B to A), "
            f"{scores['val/cycle_psnr_ba']:.2f} dB (B to A to B){flicker}")


def cycle_samples(folder, epoch, clips, fps, log):
    """A -> B -> A as the clips, B -> A -> B beside them in the grid."""
    write_samples(folder, epoch, clips["AtoB"], fps, log, labels=("A", "A to B", "back to A"),
                  more=zip(("B", "B to A", "back to B"), (windows[0] for windows in clips["BtoA"])))


def unpaired_mode(predictors, what_trains):
    return Mode(generator=cycle_generators(predictors), discriminator=cycle_discriminators,
                new_train_step=CycleStep, validate=lambda g, val, *compute, **scoring: validate_unpaired(g, *val, *compute, **scoring),
                write_samples=cycle_samples, validation_line=cycle_line, what_trains=what_trains,
                directions=lambda generator, direction: generator.direction(direction), reconstruction_loss="g_cycle")


PAIRED = Mode(generator=lambda build: build(),
              discriminator=lambda build: build(6),  # conditional: it sees the input beside the clip
              new_train_step=lambda pool_size, seed, rank=0: gan_step,
              validate=lambda g, val, *compute, **scoring: validate(g, val[0], *compute, **scoring), write_samples=write_samples,
              validation_line=paired_line, what_trains=lambda network: network,
              directions=lambda generator, direction: (generator, None), reconstruction_loss="g_l1")

CYCLE = unpaired_mode(predictors=False, what_trains=lambda network: f"cycle: two {network} generators")
RECYCLE = unpaired_mode(predictors=True, what_trains=lambda network: f"recycle: two {network} generators and two predictors")
