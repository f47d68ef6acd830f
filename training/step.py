"""One GAN training step: (1) update D on real and generated pairs, (2) update G to fool D and to
match the target (the mixed losses). Used by the training loop and by bench/train.py.

    losses = gan_step(nets, x, y, LossWeights("dcgan", l1=100), device, amp=False)   # {"g_l1": 0.21, ...}
"""
import dataclasses
import math
from dataclasses import dataclass

import torch

from compute.choice import NotFinite
from compute.precision import autocast
from networks.losses import discriminator_loss, generator_loss, reconstruction_losses, temporal_loss
from training.distributed import Ranks, any_rank
from training.ema import WeightAverage


class NonFiniteLoss(NotFinite):
    """A loss became NaN or infinite; raised before it reaches the weights."""


@dataclass(frozen=True)
class Nets:
    """The networks and their optimizers. `generator` and `discriminator` may be DDP-wrapped;
    `raw_generator` and `raw_discriminator` never are (they are saved, and D is used unwrapped in
    the G step, where it is not trained). No discriminator without an adversarial loss."""

    generator: torch.nn.Module
    raw_generator: torch.nn.Module
    opt_g: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    discriminator: torch.nn.Module | None = None
    raw_discriminator: torch.nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    ema: WeightAverage | None = None  # the average of the generator's weights (--ema), or None

    @property
    def inference_generator(self):
        """What validation (and later compare and evaluate) run: the weight average when kept."""
        return self.ema.module if self.ema is not None else self.raw_generator

    @classmethod
    def around(cls, generator, discriminator, scaler, lr, ema_decay=0.0):
        """Unwrapped `generator` and `discriminator` (or None) with Adam optimizers (betas 0.5, 0.999),
        and a weight average of the generator when `ema_decay` is above 0."""
        adam = {"lr": lr, "betas": (0.5, 0.999)}
        opt_d = torch.optim.Adam(discriminator.parameters(), **adam) if discriminator is not None else None
        ema = WeightAverage(generator, ema_decay) if ema_decay else None
        return cls(generator, generator, torch.optim.Adam(generator.parameters(), **adam), scaler, discriminator, discriminator, opt_d, ema)

    def wrapped(self, wrap):
        """These Nets with the trained modules wrapped by `wrap` (DistributedDataParallel); the raw ones stay."""
        return dataclasses.replace(self, generator=wrap(self.raw_generator),
                                   discriminator=wrap(self.raw_discriminator) if self.raw_discriminator is not None else None)


@dataclass(frozen=True)
class LossWeights:
    gan: str = "dcgan"
    l1: float = 100.0
    mse: float = 0.0
    temporal: float = 0.0  # Lai et al.'s short-term temporal loss; needs the target's flow


def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


def as_floats(losses, ranks, device):
    """The losses as floats (one device sync); raises NonFiniteLoss when one is NaN or infinite on
    any rank, so that every rank stops together."""
    values = dict(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
    bad = [f"loss/{name} became {value}" for name, value in values.items() if not math.isfinite(value)]
    if any_rank([bool(bad)], ranks, device)[0]:
        raise NonFiniteLoss(", ".join(bad) or "a loss on another rank became non-finite")
    return values


def gan_step(nets, x, y, weights, device, amp, ranks=Ranks(), motion=None):
    """x, y: (N, C, T, H, W) input and target in [-1, 1]; `motion`: the target's (flow, mask) for the
    temporal loss (datasets/pipeline.py). Returns the step's losses as floats."""
    with autocast(device, amp):
        fake = nets.generator(x)
    values = {}

    # (1) Update D: real pairs towards "real", generated pairs (detached from G) towards "fake".
    if nets.discriminator is not None:
        set_requires_grad(nets.raw_discriminator, True)
        with autocast(device, amp):  # one pass over both halves, so DDP syncs once
            logits = nets.discriminator(torch.cat([x, x]), torch.cat([y, fake.detach()])).float()
        d_real, d_fake = discriminator_loss(weights.gan, *logits.chunk(2))
        values.update(as_floats({"d_real": d_real, "d_fake": d_fake}, ranks, device))
        nets.opt_d.zero_grad(set_to_none=True)
        nets.scaler.scale(0.5 * (d_real + d_fake)).backward()
        nets.scaler.step(nets.opt_d)
        set_requires_grad(nets.raw_discriminator, False)

    # (2) Update G: fool the updated D, and stay close to the target.
    losses = {}
    if nets.raw_discriminator is not None:
        with autocast(device, amp):
            losses["g_adv"] = generator_loss(weights.gan, nets.raw_discriminator(x, fake).float())
    losses["g_l1"], losses["g_mse"] = reconstruction_losses(fake, y)
    total = losses.get("g_adv", 0.0) + weights.l1 * losses["g_l1"] + weights.mse * losses["g_mse"]
    if weights.temporal:
        losses["g_temporal"] = temporal_loss(fake, *motion)
        total = total + weights.temporal * losses["g_temporal"]
    losses["g_total"] = total
    values.update(as_floats(losses, ranks, device))
    nets.opt_g.zero_grad(set_to_none=True)
    nets.scaler.scale(total).backward()
    nets.scaler.step(nets.opt_g)
    nets.scaler.update()
    return values
