"""One GAN training step: (1) update D on real and generated pairs, (2) update G to fool D and to
match the target (the mixed losses). Used by the training loop and by bench/train.py.

Nothing in a step waits for the device: the losses stay there (training/tally.py reads them once
per --log-every), and a loss that is NaN or infinite trips a flag on the device that makes every
later update a no-op, so it never reaches the weights; the host sees the flag when it next reads.

    guard = NonFiniteGuard(device)
    losses = gan_step(nets, x, y, LossWeights("dcgan", l1=100), device, amp=False, guard=guard)   # {"g_l1": tensor, ...}
    guard.raise_if_tripped()      # one host sync: NonFiniteLoss if a loss was not finite
"""
import dataclasses
from dataclasses import dataclass

import torch
from torch.profiler import record_function

from compute.choice import NotFinite
from compute.precision import autocast
from networks.losses import discriminator_loss, generator_loss, reconstruction_losses, temporal_loss
from training.distributed import Ranks, device_max
from training.ema import WeightAverage


class NonFiniteLoss(NotFinite):
    """A loss became NaN or infinite; its update, and every later one, never reached the weights.
    `step` is the step (counted from 1) at which it first happened, when known."""

    def __init__(self, message, step=None):
        super().__init__(message)
        self.step = step


def adam(parameters, lr):
    """Adam (betas 0.5, 0.999), fused: one kernel for all parameters, and it can skip an update on a
    flag that stays on the device (found_inf), which NonFiniteGuard uses."""
    return torch.optim.Adam(parameters, lr=lr, betas=(0.5, 0.999), fused=True)


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
        """Unwrapped `generator` and `discriminator` (or None) with their optimizers, and a weight
        average of the generator when `ema_decay` is above 0."""
        opt_d = adam(discriminator.parameters(), lr) if discriminator is not None else None
        ema = WeightAverage(generator, ema_decay) if ema_decay else None
        return cls(generator, generator, adam(generator.parameters(), lr), scaler, discriminator, discriminator, opt_d, ema)

    def wrapped(self, wrap):
        """These Nets with the trained modules wrapped by `wrap` (DistributedDataParallel); the raw ones stay."""
        return dataclasses.replace(self, generator=wrap(self.raw_generator),
                                   discriminator=wrap(self.raw_discriminator) if self.raw_discriminator is not None else None)


def added_later(default, before):
    """A weight added after runs were first saved: its default, and what those runs trained with
    (`before`), which a resume of one takes, its checkpoint having no flag of that name."""
    return dataclasses.field(default=default, metadata={"before": before})


@dataclass(frozen=True)
class LossWeights:
    """What a step's losses are and weigh: each field is the train flag of its name (`gan` is
    --gan-loss, a name in networks/registry.py's ADVERSARIAL_LOSSES). Plain data, so that it travels
    whole to the timing child as a dict. A new weight is a field here with its flag (cli/train_flags.py),
    declared with added_later(), and a term in the steps that use it."""

    gan: str = "dcgan"
    l1: float = 100.0
    mse: float = 0.0
    temporal: float = added_later(0.0, before=0.0)  # Lai et al.'s short-term temporal loss; needs the target's flow
    cycle: float = added_later(10.0, before=10.0)  # the unpaired modes' cycle (and Recycle-GAN's recurrent and recycle) L1 terms
    identity: float = added_later(0.5, before=0.5)  # the identity term, as a share of `cycle`, as CycleGAN weighs it

    @staticmethod
    def flag(name):
        return "gan_loss" if name == "gan" else name

    @classmethod
    def from_config(cls, config):
        return cls(**{field.name: config[cls.flag(field.name)] for field in dataclasses.fields(cls)})

    @classmethod
    def before_they_existed(cls):
        """{flag: value} that runs saved before each added_later() weight trained with."""
        return {cls.flag(f.name): f.metadata["before"] for f in dataclasses.fields(cls) if "before" in f.metadata}


class NonFiniteGuard:
    """A flag on the device, 0 until a loss is NaN or infinite (on any rank: DDP ranks must skip
    alike), then 1 for good; while it is 1 every update is skipped. It counts the steps it saw end
    with the flag still 0, so the host learns at which step a loss first went bad when it reads."""

    def __init__(self, device, ranks=Ranks(), steps_before=0):
        self.ranks, self.steps_before = ranks, steps_before  # the steps done before this guard began counting
        self.tripped = torch.zeros((), device=device)  # float32, as fused Adam's found_inf
        self.good_steps = torch.zeros((), dtype=torch.int64, device=device)

    def check(self, losses):
        """Trip the flag if any of `losses` (0-dim tensors) is not finite here or on another rank."""
        bad = (~torch.isfinite(torch.stack([v.detach().float() for v in losses]))).any().float()
        self.tripped = torch.maximum(self.tripped, device_max(bad, self.ranks))

    def end_step(self):
        self.good_steps += (self.tripped == 0).long()

    def update(self, optimizer, scaler, loss):
        """Backward `loss` and step `optimizer`, or skip the update once the flag is up: fused Adam
        skips on its found_inf; under a float16 gradient scaler the loss is made NaN instead, so
        that the scaler (which sets found_inf itself, from the gradients) skips it."""
        optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():
            poisoned = loss * torch.where(self.tripped > 0, float("nan"), 1.0)
            scaler.scale(poisoned).backward()
            scaler.step(optimizer)
            return
        loss.backward()
        optimizer.found_inf = self.tripped
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf

    def raise_if_tripped(self, names=()):
        """NonFiniteLoss when the flag is up (one host sync), with the step it first went up at and
        `names`, the losses seen to be non-finite."""
        tripped, good = torch.stack([self.tripped.double(), self.good_steps.double()]).tolist()
        if tripped:
            step = self.steps_before + int(good) + 1
            raise NonFiniteLoss(f"{', '.join(names) or 'a loss'} became NaN or infinite", step)


def gan_step(nets, x, y, weights, device, amp, guard, ranks=Ranks(), motion=None):
    """x, y: (N, C, T, H, W) input and target in [-1, 1]; `motion`: the target's (flow, mask) for the
    temporal loss (datasets/pipeline.py). Returns the step's losses as 0-dim tensors on the device,
    detached; `guard` (a NonFiniteGuard) keeps a non-finite one from the weights. Its parts are named
    for torch.profiler (bench/train.py --profile): "G forward", "D update", "G losses", "G update"."""
    with autocast(device, amp), record_function("G forward"):
        fake = nets.generator(x)
    values = {}

    # (1) Update D: real pairs towards "real", generated pairs (detached from G) towards "fake".
    if nets.discriminator is not None:
        with record_function("D update"):
            values = update_discriminator(nets, x, y, fake, weights, device, amp, guard)

    # (2) Update G: fool the updated D, and stay close to the target.
    losses = {}
    with record_function("G losses"):
        if nets.raw_discriminator is not None:
            with autocast(device, amp):
                losses["g_adv"] = generator_loss(weights.gan, nets.raw_discriminator(x, fake).float())
        losses["g_l1"], losses["g_mse"] = reconstruction_losses(fake, y)
        total = losses.get("g_adv", 0.0) + weights.l1 * losses["g_l1"] + weights.mse * losses["g_mse"]
        if weights.temporal:
            losses["g_temporal"] = temporal_loss(fake, *motion)
            total = total + weights.temporal * losses["g_temporal"]
    return update_generator(nets, guard, {**losses, "g_total": total}, values)


def update_discriminator(nets, x, y, fake, weights, device, amp, guard):
    """D's update on real pairs (x, y) and generated ones (x, fake, detached from G); its losses."""
    set_requires_grad(nets.raw_discriminator, True)
    with autocast(device, amp):  # one pass over both halves, so DDP syncs once
        logits = nets.discriminator(torch.cat([x, x]), torch.cat([y, fake.detach()])).float()
    d_real, d_fake = discriminator_loss(weights.gan, *logits.chunk(2))
    guard.check([d_real, d_fake])
    guard.update(nets.opt_d, nets.scaler, 0.5 * (d_real + d_fake))
    set_requires_grad(nets.raw_discriminator, False)
    return {"d_real": d_real.detach(), "d_fake": d_fake.detach()}


def update_generator(nets, guard, losses, values):
    """The end of every mode's step: G's update on losses["g_total"] (none once a loss is not
    finite), then the step's losses (`values`, D's, and G's `losses`) detached."""
    guard.check(list(losses.values()))
    with record_function("G update"):
        guard.update(nets.opt_g, nets.scaler, losses["g_total"])
    nets.scaler.update()
    guard.end_step()
    return {**values, **{name: value.detach() for name, value in losses.items()}}


def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)
